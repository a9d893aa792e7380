import json

import pytest

from project.errors import InvalidRequest
from project.rest.dates import format_date, parse_date, parse_iso_duration
from project.rest.paging import order_by, paging, sorting_from_body, sorting_from_query
from project.rest.parsers import LenientJSONParser

# The request body of the POST /job example in the seed document, verbatim (stray comma included).
SEED_JOB_QUERY_BODY = """{
"dueDates":
[
{
"operator": "gt",
"value": "2012-07-17T17:00:00.000+0200"
},
{
"operator": "lt",
"value": "2012-07-17T18:00:00.000+0200"
}
],
,
"sorting":
[
{
"sortBy": "jobDueDate",
"sortOrder": "asc"
},
{
"sortBy": "jobRetries",
"sortOrder": "asc"
}
]
}"""


@pytest.mark.parametrize(
    "text",
    [
        "2013-01-23T14:42:45.000+0200",
        "2013-01-23T14:42:45.000+02:00",
        "2013-01-23T12:42:45Z",
        "2013-01-23T12:42:45.000Z",
        "2013-01-23T12:42:45",
    ],
)
def test_dates_in_any_documented_form_mean_the_same_instant(text):
    assert format_date(parse_date(text)) == "2013-01-23T12:42:45.000+0000"


@pytest.mark.parametrize("text", ["yesterday", "2013-13-45T00:00:00", "2013-01-23T25:00:00", ""])
def test_bad_dates_are_a_400_naming_the_value(text):
    with pytest.raises(InvalidRequest) as error:
        parse_date(text, "dueDate")
    assert "dueDate" in error.value.message


def test_dates_out_keep_milliseconds():
    assert format_date(parse_date("2021-05-04T16:35:10.474Z")) == "2021-05-04T16:35:10.474+0000"
    assert format_date(None) is None


def test_iso_durations():
    assert parse_iso_duration("PT10M").total_seconds() == 600
    with pytest.raises(InvalidRequest):
        parse_iso_duration("10 minutes")


def test_paging_rejects_negative_and_non_numbers():
    assert paging({"firstResult": "5", "maxResults": "10"}) == (5, 10)
    for bad in [{"firstResult": "-1"}, {"maxResults": "ten"}]:
        with pytest.raises(InvalidRequest):
            paging(bad)


def test_sorting_needs_both_sort_by_and_sort_order():
    with pytest.raises(InvalidRequest, match="sortBy and sortOrder required"):
        sorting_from_query({"sortOrder": "asc"})
    with pytest.raises(InvalidRequest):
        sorting_from_body({"sorting": [{"sortBy": "jobId"}]})
    assert sorting_from_body({"sorting": None}) == []


def test_unknown_sort_key_or_order_is_a_400():
    with pytest.raises(InvalidRequest, match="sortBy"):
        order_by([{"sortBy": "nope", "sortOrder": "asc"}], {"jobId": "id"})
    with pytest.raises(InvalidRequest, match="sortOrder"):
        order_by([{"sortBy": "jobId", "sortOrder": "up"}], {"jobId": "id"})


def test_the_seed_job_query_example_parses_as_written():
    import io

    body = SEED_JOB_QUERY_BODY

    parsed = LenientJSONParser().parse(io.BytesIO(body.encode()))
    assert [s["sortBy"] for s in parsed["sorting"]] == ["jobDueDate", "jobRetries"]
    assert parsed["dueDates"][0] == {"operator": "gt", "value": "2012-07-17T17:00:00.000+0200"}
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)  # proof the example really is invalid strict JSON


def test_extreme_offsets_are_normalised_to_utc_or_refused():
    parsed = parse_date("0190-10-28T23:15:51+17:55")
    assert parsed.utcoffset().total_seconds() == 0
    assert format_date(parsed) == "0190-10-28T05:20:51.000+0000"
    with pytest.raises(InvalidRequest):
        parse_date("0001-01-01T00:00:00+10:00")  # before year 1 in UTC
