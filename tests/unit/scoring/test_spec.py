"""The model-file format: what it accepts, and errors that say where the problem is."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from schemas.events import EVENT_TYPES
from schemas.stages import Stage
from stream.model_files import load_default_models, load_model_file
from stream.scoring import ModelFileError, parse_models
from stream.scoring.spec import format_duration, parse_duration, rule_code

MINIMAL = """
format: 1
models:
  - id: b2b
    version: 1
    decay: {web: 30d, negative: never}
    fit:
      - {id: industry, field: industry, in: [software], points: 5}
    engagement:
      - {id: visit, event: page_viewed, points: 2, group: web}
    grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}
"""


def _error(text: str) -> str:
    with pytest.raises(ModelFileError) as info:
        parse_models(text, source="models.yaml")
    return str(info.value)


def _edit(old: str, new: str) -> str:
    assert old in MINIMAL
    return MINIMAL.replace(old, new)


def test_the_default_models_are_valid_and_reproduce_the_domain_point_values() -> None:
    models = load_default_models()
    assert models.ids == ("b2b", "consumer")
    b2b = models.get("b2b")
    points = {rule.id: rule.points for rule in [*b2b.fit, *b2b.engagement]}
    assert points["age"] == 1 and b2b.fit[0].per_unit_above == 25
    expected = {
        "target_industry": 5,
        "company_over_50": 3,
        "decision_maker": 2,
        "visit": 2,
        "ad_click": 3,
        "newsletter": 5,
        "webinar": 10,
        "guide_download": 5,
        "video_view": 2,
        "social_share": 3,
        "form": 7,
        "email_open": 1,
    }
    assert {rule: points[rule] for rule in expected} == expected
    assert all(points[r] < 0 for r in ("unsubscribe", "hard_bounce", "spam_complaint"))
    assert all(points[r] < 0 for r in ("free_mail", "competitor", "student", "careers_page"))
    hand_raisers = {r.id for r in b2b.engagement if r.hand_raise}
    assert {"demo_request", "trial_request", "social_lead_form"} <= hand_raisers
    assert {h: format_duration(b2b.decay[h] or 0) for h in ("web", "email", "social")} == {
        "web": "30d",
        "email": "2w",
        "social": "1w",
    }
    assert b2b.decay["negative"] is None


def test_a_minimal_file_is_enough_and_versions_are_text() -> None:
    model = parse_models(MINIMAL).get("b2b")
    assert model.version == "1"
    assert model.stages.initial is Stage.LEAD
    assert parse_models(_edit("version: 1", "version: 2025-06-01")).get("b2b").version == (
        "2025-06-01"
    )


def test_country_codes_and_keys_that_yaml_1_1_would_turn_into_booleans_stay_text() -> None:
    text = _edit(
        "{id: industry, field: industry, in: [software], points: 5}",
        "{id: nordics, field: country, in: [NO, SE, DK, 'on'], points: 5}",
    )
    rule = parse_models(text).get("b2b").fit[0]
    assert rule.in_ == ["NO", "SE", "DK", "on"]


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        (
            "group: web}",
            "group: webb}",
            "models.yaml: line 10, model 'b2b', engagement rule 'visit', field 'group'",
            "unknown decay group 'webb' (did you mean 'web'?) (known: web, negative)",
        ),
        (
            "points: 2, group: web}",
            "points: -2, group: web}",
            "models.yaml: line 10, model 'b2b', engagement rule 'visit', field 'group'",
            "negative points need a decay group that does not decay",
        ),
        (
            "event: page_viewed,",
            "event: page_view,",
            "models.yaml: line 10, model 'b2b', engagement rule 'visit', field 'event'",
            "unknown event type 'page_view' (did you mean 'page_viewed'?)",
        ),
        (
            "event: page_viewed,",
            "event: page_viewed, where: {pathh: /pricing},",
            "models.yaml: line 10, model 'b2b', engagement rule 'visit', field 'where.pathh'",
            "page_viewed has no property 'pathh' (did you mean 'path'?)",
        ),
        (
            "group: web}",
            "group: web, cap: {max_count: 0, per: 1d}}",
            "models.yaml: line 10, model 'b2b', engagement rule 'visit', field 'cap.max_count'",
            "greater than or equal to 1",
        ),
        (
            "group: web}",
            "group: web, cap: {max_count: 5, per: daily}}",
            "models.yaml: line 10, model 'b2b', engagement rule 'visit', field 'cap.per'",
            "expected a duration such as '30d'",
        ),
        (
            "group: web}",
            "group: web, cap: {max_count: 5, max_points: 5, per: 1d}}",
            "models.yaml: line 10, model 'b2b', engagement rule 'visit', field 'cap'",
            "give exactly one of max_count and max_points",
        ),
        (
            "group: web}",
            "group: web, colour: red}",
            "models.yaml: line 10, model 'b2b', engagement rule 'visit', field 'colour'",
            "unknown field",
        ),
        (
            "field: industry, in: [software]",
            "field: industri, in: [software]",
            "models.yaml: line 8, model 'b2b', fit rule 'industry', field 'field'",
            "unknown profile field 'industri' (did you mean 'industry'?)",
        ),
        (
            "field: industry, in: [software]",
            "field: industry, regex: '(unclosed'",
            "models.yaml: line 8, model 'b2b', fit rule 'industry', field 'regex'",
            "not a valid regular expression",
        ),
        (
            "field: industry, in: [software]",
            "field: industry, in: [software], equals: saas",
            "models.yaml: line 8, model 'b2b', fit rule 'industry', field 'industry'",
            "give exactly one of equals, in, range, regex, per_unit_above (got equals, in)",
        ),
        (
            "field: industry, in: [software]",
            "field: industry, range: {gt: 5}",
            "models.yaml: line 8, model 'b2b', fit rule 'industry', field 'range'",
            "'industry' is text, not a number",
        ),
        (
            "field: industry, in: [software]",
            "field: company_size, range: {gt: 50, le: 10}",
            "models.yaml: line 8, model 'b2b', fit rule 'industry', field 'range'",
            "no value is > 50 and <= 10: the rule could never match",
        ),
        (
            "field: industry, in: [software]",
            "field: company_size, range: {ge: 10, lt: 10}",
            "models.yaml: line 8, model 'b2b', fit rule 'industry', field 'range'",
            "no value is >= 10 and < 10",
        ),
        (
            "decay: {web: 30d, negative: never}",
            "decay: {web: 30 days, negative: never}",
            "models.yaml: line 6, model 'b2b', field 'decay.web'",
            "expected a duration",
        ),
        (
            "grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}",
            "grades: {fit: [15, 8, 0], engagement: [10, 30, 60]}",
            "models.yaml: line 11, model 'b2b', field 'grades.engagement'",
            "descending",
        ),
        (
            "grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}",
            "grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}\n"
            "    stages: {mql: {promote_at: 40, demote_below: 50}}",
            "models.yaml: line 12, model 'b2b', field 'stages.mql.demote_below'",
            "must not be above promote_at",
        ),
        (
            "    grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}\n",
            "",
            "models.yaml: line 4, model 'b2b', field 'grades'",
            "required",
        ),
        (
            "{id: industry,",
            "{id: visit,",
            "models.yaml: line 10, model 'b2b', engagement rule 'visit', field 'id'",
            "already used by a fit rule",
        ),
    ],
)
def test_errors_name_the_file_the_line_the_model_the_rule_and_the_field(
    old: str, new: str, where: str, message: str
) -> None:
    error = _error(_edit(old, new))
    assert error.startswith(where + ": "), error
    assert message in error


def test_every_problem_is_reported_on_its_own_line() -> None:
    text = _edit("group: web}", "group: web, cap: {per: daily, colour: red}}")
    lines = _error(text).splitlines()
    assert len(lines) == 2
    assert all(
        line.startswith("models.yaml: line 10, model 'b2b', engagement rule 'visit'")
        for line in lines
    )


def test_a_key_given_twice_is_an_error_not_the_last_one_silently() -> None:
    error = _error(_edit("version: 1", "version: 1\n    version: 2"))
    assert "key 'version' is given twice" in error


def test_yaml_that_does_not_parse_says_where() -> None:
    error = _error("models: [\n  - {id: x\n")
    assert re.match(r"models\.yaml: not valid YAML: line \d+, column \d+: ", error)


@pytest.mark.parametrize("text", ["", "- 1\n- 2\n", "just text"])
def test_a_file_without_a_mapping_at_the_top_is_rejected(text: str) -> None:
    assert "expected a mapping with a 'models' list" in _error(text)


def test_a_file_needs_a_model() -> None:
    assert _error("format: 1\nmodels: []\n") == (
        "models.yaml: line 2, field 'models': give at least one model"
    )


def test_model_ids_are_unique_in_a_file() -> None:
    doubled = MINIMAL + MINIMAL.split("models:\n", 1)[1]
    second = doubled.count("\n", 0, doubled.rindex("id: b2b")) + 1  # its line, not the file's
    assert _error(doubled) == (
        f"models.yaml: line {second}, model 'b2b', field 'id': the id 'b2b' is already used by "
        "an earlier model (model ids must be unique)"
    )


def test_errors_can_be_pickled(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as info:
        parse_models(_edit("group: web}", "group: webb}"), source="x.yaml")
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value) and copy.problems == info.value.problems


def test_the_file_edge_reads_files_and_names_them(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL)
    assert load_model_file(good).ids == ("b2b",)
    with pytest.raises(ModelFileError, match=r"missing\.yaml: cannot read the file"):
        load_model_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(_edit("group: web}", "group: webb}"))
    where = f"{bad}: line 10, model 'b2b', engagement rule"
    with pytest.raises(ModelFileError, match=re.escape(where)):
        load_model_file(bad)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("12h", 43_200), ("30d", 2_592_000)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["0d", "-1d", "30", "30 days", "1y", None, 30])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)


def test_every_scorable_event_type_can_be_named_in_a_rule() -> None:
    scorable = sorted(
        set(EVENT_TYPES)
        - {"identify", "profile_updated", "leads_merged", "lead_erased", "stage_set"}
    )
    rules = "\n".join(
        f"      - {{id: r{i}, event: {name}, points: 1, group: web}}"
        for i, name in enumerate(scorable)
    )
    text = MINIMAL.replace("      - {id: visit, event: page_viewed, points: 2, group: web}", rules)
    assert len(parse_models(text).get("b2b").engagement) == len(scorable)


def test_rule_state_keys_are_short_and_stable() -> None:
    assert rule_code("email_open") == rule_code("email_open")
    assert len(rule_code("a-very-long-rule-id-for-a-campaign")) == 4


def test_the_readme_documents_the_format_and_the_default_models() -> None:
    readme = Path(__file__).resolve().parents[3] / "README.md"
    section = readme.read_text(encoding="utf-8").split("\n## Scoring models\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    for model in load_default_models().models:
        for rule in [*model.fit, *model.engagement]:
            assert f"`{rule.id}`" in section, f"{model.id}/{rule.id} is not in the README"
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    model = parse_models(example, source="README.md").get("b2b")  # the example is a valid file
    assert {rule.id for rule in model.engagement} >= {"pricing_page", "demo_request"}


def test_an_sql_threshold_below_the_mql_threshold_is_rejected_on_its_line() -> None:
    text = _edit(
        "grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}",
        "grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}\n"
        "    stages:\n"
        "      mql: {promote_at: 50}\n"
        "      sql: {promote_at: 40}",
    )
    assert _error(text) == (
        "models.yaml: line 14, model 'b2b', field 'stages.sql.promote_at': 40 is below the MQL "
        "threshold mql.promote_at 50 (both on the total score): a lead would reach SQL before "
        "MQL; give an SQL threshold at or above the MQL one"
    )
    same = text.replace("promote_at: 40", "promote_at: 50")
    assert parse_models(same).get("b2b").stages.sql is not None
    other_basis = text.replace("sql: {promote_at: 40}", "sql: {promote_at: 40, basis: fit}")
    assert parse_models(other_basis).get("b2b").stages.sql is not None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}",
            "grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}\n"
            "    stages: {mql: {promot_at: 40}}",
            "models.yaml: line 12, model 'b2b', field 'stages.mql.promot_at': unknown field (not "
            "part of the format) (did you mean 'promote_at'?)",
        ),
        (
            "points: 2, group: web}",
            "pionts: 2, group: web}",
            "models.yaml: line 10, model 'b2b', engagement rule 'visit', field 'pionts': unknown "
            "field (not part of the format) (did you mean 'points'?)",
        ),
        (
            "    decay: {web: 30d, negative: never}",
            "    decay: {web: 30d, negative: never}\n    desciption: B2B leads",
            "models.yaml: line 7, model 'b2b', field 'desciption': unknown field (not part of the "
            "format) (did you mean 'description'?)",
        ),
        (
            "format: 1",
            "format: 1\nmodel: []",
            "models.yaml: line 3, field 'model': unknown field (not part of the format) (did you "
            "mean 'models'?)",
        ),
    ],
)
def test_a_misspelt_key_is_named_with_its_line_and_the_key_it_may_mean(
    old: str, new: str, message: str
) -> None:
    assert message in _error(_edit(old, new)).splitlines()


def test_every_problem_of_a_block_style_file_has_the_line_of_its_key(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "format: 1",  # line 1
            "models:",
            "  - id: b2b",
            "    version: 1",
            "    decay:",
            "      web: 30 days",  # line 6: not a duration
            "    fit:",
            "      - id: industry",
            "        field: industri",  # line 9: misspelt
            "        in: [software]",
            "        points: 5",
            "    engagement:",
            "      - id: visit",
            "        event: page_viewed",
            "        points: 2",
            "        group: web",
            "        cap:",
            "          max_count: 0",  # line 18: below 1
            "          per: 1d",
            "    grades:",
            "      fit: [15, 8, 0]",
            "      engagement: [10, 30, 60]",  # line 22: not descending
            "",
        ]
    )
    path = tmp_path / "blocks.yaml"
    path.write_text(text)
    with pytest.raises(ModelFileError) as info:
        load_model_file(path)
    assert sorted(problem.line or 0 for problem in info.value.problems) == [6, 9, 18, 22]
    assert all(line.startswith(f"{path}: line ") for line in str(info.value).splitlines())


def test_a_range_of_one_value_is_allowed() -> None:
    text = _edit(
        "{id: industry, field: industry, in: [software], points: 5}",
        "{id: ten, field: company_size, range: {ge: 10, le: 10}, points: 5}",
    )
    assert parse_models(text).get("b2b").fit[0].id == "ten"
