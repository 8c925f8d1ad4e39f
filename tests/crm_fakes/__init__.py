"""Local servers that stand in for the CRMs' APIs, each enforcing its documented contract."""
