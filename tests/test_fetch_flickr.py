"""The Flickr client against the fake server: parameters, retries, error 100, rate limit, credentials."""

from __future__ import annotations

import pytest

from janus_build.demo.flickr_server import FakeFlickr
from janus_build.errors import ConfigError, RemoteError
from janus_build.fetch.flickr import (
    CREATIVE_COMMONS_LICENSES,
    Credentials,
    FlickrClient,
    TokenBucket,
    photo_record,
    pick_url,
)


@pytest.fixture(scope="module")
def fake():
    with FakeFlickr(
        {291: "lion", 2: "great white shark"}, queries={2: '"great white shark" -cake'}, photos_per_class=600
    ) as server:
        yield server


def _client(fake, **kwargs):
    kwargs.setdefault("backoff", 0.01)
    return FlickrClient(fake.credentials, fake.api_url, TokenBucket(10**7), **kwargs)


def test_search_sends_the_papers_parameters(fake):
    before = len(fake.calls)
    page = _client(fake).search("lion", page=1)
    call = fake.calls[before]
    assert call["sort"] == "interestingness-desc" and call["safe_search"] == "1" and call["per_page"] == 500
    assert call["license"] == ",".join(map(str, CREATIVE_COMMONS_LICENSES))
    assert page.total == len(fake.search("lion", set(CREATIVE_COMMONS_LICENSES), 1, None, None))
    assert 0 < len(page.photos) <= 500 and page.pages == -(-page.total // 500)
    record = photo_record(page.photos[0], max_size=1024)
    assert record["key"] == f"flickr-{record['photo_id']}"
    assert record["license_id"] in CREATIVE_COMMONS_LICENSES and record["license"].startswith("CC")
    assert record["owner"] and record["owner_name"] and record["date_upload"] > 0 and record["description"]


@pytest.mark.parametrize("fault", ["105", "500", "malformed", "slow"])
def test_transient_failures_are_retried(fake, fault):
    # Only a stalled answer should time out: a clean call on a loaded machine may take over 0.5 s.
    fake.slow_seconds = 3.0
    client = _client(fake, timeout=1.0 if fault == "slow" else 30.0)
    fake.inject(fault, fault)
    page = client.search("lion")
    assert page.total > 0 and client.calls == 3
    assert not fake._faults  # both faults were met, then a clean answer


def test_retries_give_up_with_a_remote_error(fake):
    client = _client(fake, retries=2)
    fake.inject("500", "500", "500")
    with pytest.raises(RemoteError, match="after 3 attempts"):
        client.search("lion")


def test_invalid_key_stops_with_the_variable_to_set(fake):
    client = FlickrClient(Credentials("wrong-key", "x"), fake.api_url, TokenBucket(10**7), backoff=0.01)
    with pytest.raises(RemoteError, match="FLICKR_API_KEY") as info:
        client.search("lion")
    assert client.calls == 1  # not retried
    assert "wrong-key" not in str(info.value)


def test_token_bucket_limits_the_rate():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(3600, capacity=2, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(5)]
    assert waits[:2] == [0.0, 0.0]  # the burst
    assert all(w == pytest.approx(1.0) for w in waits[2:])  # then one call per second
    assert now[0] == pytest.approx(3.0)


def test_pick_url_takes_the_largest_size_that_fits():
    photo = {
        "url_s": "s",
        "width_s": 240,
        "height_s": 180,
        "url_z": "z",
        "width_z": 640,
        "height_z": 480,
        "url_o": "o",
        "width_o": 4000,
        "height_o": 3000,
    }
    assert pick_url(photo, 1024) == ("z", 640, 480)
    assert pick_url(photo, 5000) == ("o", 4000, 3000)
    assert pick_url(photo, 100) == ("s", 240, 180)  # nothing fits: the smallest
    assert pick_url({}, 100) == (None, None, None)


def test_credentials_from_env_then_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    monkeypatch.delenv("FLICKR_API_SECRET", raising=False)
    config = tmp_path / "flickr.toml"
    monkeypatch.setenv("JANUS_FLICKR_CONFIG", str(config))
    with pytest.raises(ConfigError, match="FLICKR_API_KEY"):
        Credentials.load()
    config.write_text('api_key = "file-key-1234"\napi_secret = "file-secret"\n')
    loaded = Credentials.load()
    assert (loaded.api_key, loaded.api_secret) == ("file-key-1234", "file-secret")
    assert "file-key" not in repr(loaded)
    monkeypatch.setenv("FLICKR_API_KEY", "env-key-5678")
    monkeypatch.setenv("FLICKR_API_SECRET", "env-secret")
    assert Credentials.load().api_key == "env-key-5678"


def test_fake_server_filters_dates_licences_safety_and_caps_at_4000():
    with FakeFlickr({7: "cock"}, photos_per_class=7000) as big:
        client = _client(big)
        everything = client.search("cock", licenses=tuple(range(17)))
        cc = client.search("cock")
        assert everything.total > cc.total > 4000
        only_arr = client.search("cock", licenses=(0,))
        assert only_arr.total and all(p["license"] == "0" for p in only_arr.photos)
        lo, hi = 1300000000, 1400000000
        window = client.search("cock", min_upload_date=lo, max_upload_date=hi)
        assert 0 < window.total < cc.total
        assert all(lo <= int(p["dateupload"]) <= hi for p in window.photos)
        unsafe = [p for p in big.photos if p.safety != 1]
        assert unsafe and {str(p.photo_id) for p in unsafe}.isdisjoint({p["id"] for p in cc.photos})
        # Beyond the cap Flickr repeats results: page 9 (results 4,001+) equals page 8.
        page8, page9 = client.search("cock", page=8), client.search("cock", page=9)
        assert [p["id"] for p in page9.photos] == [p["id"] for p in page8.photos]
        scores = [big._by_id[int(p["id"])].interestingness for p in cc.photos]
        assert scores == sorted(scores, reverse=True)


def test_pick_url_without_width_and_height_gives_null_not_zero():
    assert pick_url({"url_z": "z"}, 1024) == ("z", None, None)
    assert pick_url({"url_z": "z", "width_z": "0", "height_z": ""}, 1024) == ("z", None, None)
    # ranked by Flickr's nominal side for the suffix (z = 640): it fits 1024, the original does not count
    photo = {"url_s": "s", "width_s": 240, "height_s": 180, "url_z": "z", "url_o": "o"}
    assert pick_url(photo, 1024) == ("z", None, None)
    assert pick_url(photo, 300) == ("s", 240, 180)


def test_reply_text_is_decoded_and_description_markup_removed():
    photo = {
        "id": "1",
        "title": "Bob &amp; Alice&#39;s &quot;lion&quot;",
        "ownername": "Bob &amp; Alice",
        "tags": "lion caf&eacute;",
        "description": {"_content": 'A <a href="https://x.org/car">lion</a> &amp; cub<br />at dusk'},
        "license": "4",
    }
    record = photo_record(photo, 1024)
    assert record["title"] == 'Bob & Alice\'s "lion"' and record["owner_name"] == "Bob & Alice"
    assert record["tags"] == "lion café"
    assert record["description"] == "A lion & cub at dusk"
    assert record["description_html"] == photo["description"]["_content"]
    no_licence = photo_record({"id": "2"}, 1024)
    assert no_licence["license_id"] is None and no_licence["license"] is None


def test_license_drop_names_the_rule():
    from janus_build.fetch.flickr import license_drop

    assert license_drop(4, CREATIVE_COMMONS_LICENSES) is None
    assert license_drop(None, CREATIVE_COMMONS_LICENSES) == "license:missing"
    assert license_drop(0, CREATIVE_COMMONS_LICENSES) == "license:0"
    assert license_drop(99, CREATIVE_COMMONS_LICENSES) == "license:99"


def test_an_endpoint_error_never_shows_credentials_of_the_url(fake):
    api_url = fake.api_url.replace("http://", "http://user:pa55-in-url@").replace("/services/rest/", "/nowhere/")
    client = FlickrClient(fake.credentials, api_url, TokenBucket(10**7), retries=0, backoff=0.01)
    with pytest.raises(RemoteError) as info:
        client.search("lion")
    assert "pa55-in-url" not in str(info.value) and "***@127.0.0.1" in str(info.value)


def test_the_fake_server_generates_in100_classes_from_the_shipped_queries():
    from janus_build.demo.flickr_server import shipped_queries
    from janus_build.fetch.queries import load_queries

    queries = shipped_queries({291: "lion", 2: "shark", 99999: "mine"})
    assert sorted(queries) == [2, 291]  # an id not in the file is generated from its name
    shark = load_queries(None, [2])[0]
    assert queries[2] == shark.queries[0].text() and "great white shark" in queries[2]
    fake = FakeFlickr({2: "shark"}, queries=queries, photos_per_class=30)  # not started: the corpus only
    matching = fake.search(queries[2], set(CREATIVE_COMMONS_LICENSES), 1, None, None)
    kept = [p for p in matching if shark.queries[0].explain_drop(p.title, p.tags, p.description) is None]
    assert kept  # the documented `--classes 291:lion,2:shark` now fetches photos for class 2
