"""Serve a CRM stand-in on 127.0.0.1 until interrupted, for a process that needs one of its own
(`leadstream bench connect --kind hubspot` starts it this way):

    PYTHONPATH=tests python -m crm_fakes hubspot --port 8098 --rate-per-10s 100 --token pat-...
"""

from __future__ import annotations

import argparse
import asyncio

from crm_fakes.hubspot import HubspotFake


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m crm_fakes")
    parser.add_argument("vendor", choices=["hubspot"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--rate-per-10s",
        type=int,
        default=100,
        help="requests accepted in any 10 s before 429 (HubSpot's private apps on Free and "
        "Starter: 100)",
    )
    parser.add_argument(
        "--token", action="append", default=[], help="an access token it accepts (repeatable)"
    )
    args = parser.parse_args(argv)

    async def serve() -> None:
        fake = HubspotFake(rate_per_10s=args.rate_per_10s)
        fake.tokens.update(args.token)
        await fake.serve(args.port)
        try:
            await asyncio.Event().wait()
        finally:
            await fake.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
