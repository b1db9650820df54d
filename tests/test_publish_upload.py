"""publish, upload side: against a fake Hub on 127.0.0.1 that answers the calls huggingface_hub makes for
create_repo + create_branch + list_repo_files + create_commit + create_tag: validate-yaml, preupload (text
files "regular", inlined as base64 in the commit; Parquet / mp4 / PNG "lfs", through the LFS batch API, a
PUT to the returned URL and a verify call, as the Hub answers when hf_xet is not installed), commit; and
with 401 / 404 / 500 / a closed port for the failure paths."""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest

TOKEN = "hf_fixtureSECRETtoken_4242"
# huggingface_hub's own LFS PUT passes a file object as data=; httpx warns about it, not our code
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


class FakeHub:
    """The few Hub endpoints a small dataset commit touches, with state, auth and failure injection."""

    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail: dict[str, int] = {}     # step name -> status to answer with
        self.echo_token = False             # a careless server that echoes the Authorization header
        self.hidden: set[str] = set()       # repos that exist but the token cannot see (404)
        self.lfs_suffixes = (".parquet", ".mp4", ".png")   # what the Hub's default .gitattributes tracks
        self.blobs: dict[str, bytes] = {}   # LFS storage: sha256 -> content (uploaded, maybe never committed)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def commits(self, repo: str) -> list[dict]:
        return [c for b in self.repos[repo]["branches"].values() for c in b["commits"]]

    def files(self, repo: str, branch: str = "main") -> dict[str, bytes]:
        return self.repos[repo]["branches"][branch]["files"]

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10   # a stuck read fails the test instead of hanging it

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    n = int(self.headers.get("Content-Length") or 0)
                    return self.rfile.read(n) if n else b""
                data = b""
                while True:   # the LFS PUT streams a file object: chunked transfer encoding
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    chunk = self.rfile.read(size)
                    self.rfile.readline()
                    if size == 0:
                        return data
                    data += chunk

            def _send(self, status: int, body, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def do_PUT(self):  # the LFS "S3" upload: a pre-signed URL, no Authorization header
                path = urlsplit(self.path).path
                body = self._body()
                hub.requests.append(("PUT", path))
                oid = path.rsplit("/", 1)[-1]
                if hashlib.sha256(body).hexdigest() != oid:
                    return self._send(400, {"error": "sha256 mismatch"})
                hub.blobs[oid] = body
                return self._send(200, {})

            def _route(self, method: str) -> None:
                path = unquote(urlsplit(self.path).path)
                body = self._body()
                hub.requests.append((method, path))
                auth = self.headers.get("Authorization", "")
                if auth != f"Bearer {TOKEN}":
                    msg = "Invalid credentials in Authorization header"
                    return self._send(401, {"error": msg + (f" ({auth})" if hub.echo_token else "")})
                parts = path.strip("/").split("/")
                if path == "/api/repos/create":
                    return self._create(json.loads(body))
                if path == "/api/validate-yaml":
                    return self._send(200, {"errors": [], "warnings": []})
                if path.endswith(".git/info/lfs/objects/batch"):
                    return self._lfs_batch(json.loads(body))
                if path == "/lfs-verify":
                    v = json.loads(body)
                    ok = len(hub.blobs.get(v["oid"], b"")) == v["size"]
                    return self._send(200 if ok else 404, {} if ok else {"error": "object not uploaded"})
                if len(parts) >= 6 and parts[:2] == ["api", "datasets"]:
                    repo, action, rest = f"{parts[2]}/{parts[3]}", parts[4], "/".join(parts[5:])
                    if action in hub.fail:
                        return self._send(hub.fail[action], {"error": f"injected {action} failure"})
                    if repo not in hub.repos or repo in hub.hidden:
                        return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    handler = getattr(self, f"_{action}", None)
                    if handler is None:   # e.g. xet-write-token: this fake speaks LFS only
                        return self._send(404, {"error": f"no route {method} {path}"})
                    return handler(hub.repos[repo], repo, rest, body)
                return self._send(404, {"error": f"no route {method} {path}"})

            def _create(self, payload: dict) -> None:
                if "create" in hub.fail:
                    return self._send(hub.fail["create"], {"error": "injected create failure"})
                repo = f"{payload['organization']}/{payload['name']}"
                assert payload["type"] == "dataset"
                if repo in hub.repos:
                    return self._send(409, {"error": "You already created this dataset repo",
                                            "url": f"{hub.url}/datasets/{repo}"})
                hub.repos[repo] = {"visibility": payload.get("visibility"), "tags": {},
                                   "branches": {"main": {"files": {".gitattributes": b"*.parquet filter=lfs\n"},
                                                         "commits": []}}}
                return self._send(200, {"url": f"{hub.url}/datasets/{repo}"})

            def _branch(self, repo: dict, name: str, rest: str, body: bytes) -> None:
                if rest in repo["branches"]:
                    return self._send(409, {"error": "Reference already exists"})
                repo["branches"][rest] = {"files": dict(repo["branches"]["main"]["files"]), "commits": []}
                return self._send(200, {})

            def _tree(self, repo: dict, name: str, rest: str, body: bytes) -> None:
                files = repo["branches"][rest.split("/")[0]]["files"]
                return self._send(200, [{"type": "file", "path": p, "size": len(b),
                                         "oid": hashlib.sha1(b).hexdigest()} for p, b in sorted(files.items())])

            def _preupload(self, repo: dict, name: str, rest: str, body: bytes) -> None:
                files = json.loads(body)["files"]
                mode = {True: "lfs", False: "regular"}
                return self._send(200, {"files": [{"path": f["path"], "shouldIgnore": False, "oid": None,
                                                   "uploadMode": mode[f["path"].endswith(hub.lfs_suffixes)]}
                                                  for f in files]})

            def _lfs_batch(self, payload: dict) -> None:
                assert payload["operation"] == "upload" and payload["hash_algo"] == "sha256"
                objects = []
                for o in payload["objects"]:
                    entry = {"oid": o["oid"], "size": o["size"]}
                    if o["oid"] not in hub.blobs:    # already stored -> no actions, the client skips it
                        entry["actions"] = {"upload": {"href": f"{hub.url}/lfs-upload/{o['oid']}", "header": {}},
                                            "verify": {"href": f"{hub.url}/lfs-verify", "header": {}}}
                    objects.append(entry)
                return self._send(200, {"transfer": "basic", "objects": objects})

            def _commit(self, repo: dict, name: str, rest: str, body: bytes) -> None:
                lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
                assert lines[0]["key"] == "header"
                files = dict(repo["branches"][rest]["files"])   # applied all at once, or not at all
                for op in lines[1:]:
                    v = op["value"]
                    if op["key"] == "file":
                        files[v["path"]] = base64.b64decode(v["content"])
                    elif op["key"] == "lfsFile":
                        if v["oid"] not in hub.blobs:
                            return self._send(422, {"error": f"LFS object {v['oid']} was never uploaded"})
                        files[v["path"]] = hub.blobs[v["oid"]]
                    elif op["key"] == "deletedFile":
                        del files[v["path"]]
                    else:
                        return self._send(400, {"error": f"unsupported op {op['key']}"})
                oid = hashlib.sha1(body).hexdigest()
                branch = repo["branches"][rest]
                branch["files"] = files
                branch["commits"].append({"oid": oid, "summary": lines[0]["value"]["summary"],
                                          "description": lines[0]["value"]["description"]})
                return self._send(200, {"commitUrl": f"{hub.url}/datasets/{name}/commit/{oid}",
                                        "commitOid": oid, "pullRequestUrl": None})

            def _tag(self, repo: dict, name: str, rest: str, body: bytes) -> None:
                repo["tags"][json.loads(body)["tag"]] = rest
                return self._send(200, {})

        return Handler


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub.constants as hc

    fake = FakeHub()
    fake.thread.start()
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("MY_HUB_TOKEN", TOKEN)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)   # conftest sets offline; this test talks to loopback only
    # hf_xet is installed, and huggingface_hub then uploads LFS files through Xet (a CAS service this fake does
    # not emulate); HF_HUB_DISABLE_XET=1 selects the LFS batch protocol the Hub still serves.
    monkeypatch.setattr(hc, "HF_HUB_DISABLE_XET", True)
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def build(tmp_path):
    from test_publish import make_build

    return make_build(tmp_path / "build", "video", n_questions=2)


def _publish(capfd, caplog, *args: str) -> tuple[int, str]:
    from mr2bench.cli import main

    caplog.set_level(logging.DEBUG)
    rc = main(["publish", *args, "--token-env", "MY_HUB_TOKEN", "--log-level", "debug"])
    out, err = capfd.readouterr()
    text = out + err + caplog.text
    assert TOKEN not in text and TOKEN[3:15] not in text   # never printed, never logged
    return rc, text


def test_publish_one_commit_with_every_staged_file(hub, build, tmp_path, capfd, caplog):
    from mr2bench.hub.stage import build_hash

    rc, text = _publish(capfd, caplog, str(build), "--repo-id", "org/bench")
    assert rc == 0, text
    repo = hub.repos["org/bench"]
    assert repo["visibility"] == "private"                    # private by default
    commits = hub.commits("org/bench")
    assert len(commits) == 1
    h = build_hash(build)
    assert h[:12] in commits[0]["summary"] and h in commits[0]["description"]
    assert f"{hub.url}/datasets/org/bench/commit/{commits[0]['oid']}" in text   # the commit URL is printed
    # the Hub now holds exactly what --stage-only writes, byte for byte
    from mr2bench.hub.stage import stage_benchmark

    ref = stage_benchmark(build, tmp_path / "ref").stage_dir
    want = {p.relative_to(ref).as_posix(): p.read_bytes() for p in ref.rglob("*") if p.is_file()}
    got = {k: v for k, v in hub.files("org/bench").items() if k != ".gitattributes"}
    assert got == want
    assert "media/q000.mp4" in got and "README.md" in got and "data/items/test-00000-of-00001.parquet" in got
    # the calls huggingface_hub made: repo create, validate-yaml, preupload, LFS batch + one PUT and one
    # verify per binary file, then one commit
    posts = [p for m, p in hub.requests if m == "POST" and p != "/lfs-verify"]
    assert posts == ["/api/repos/create", "/api/validate-yaml", "/api/datasets/org/bench/preupload/main",
                     "/datasets/org/bench.git/info/lfs/objects/batch", "/api/datasets/org/bench/commit/main"]
    binaries = [f for f in want if f.endswith((".parquet", ".mp4", ".png"))]
    assert len([1 for m, _ in hub.requests if m == "PUT"]) == len(binaries) >= 5


def test_republish_removes_stale_files_in_the_same_commit(hub, build, tmp_path, capfd, caplog):
    from test_publish import make_build

    assert _publish(capfd, caplog, str(build), "--repo-id", "org/bench", "--public")[0] == 0
    assert hub.repos["org/bench"]["visibility"] == "public"
    smaller = make_build(tmp_path / "b2", "video", n_questions=1)
    rc, text = _publish(capfd, caplog, str(smaller), "--repo-id", "org/bench")
    assert rc == 0, text
    assert len(hub.commits("org/bench")) == 2
    files = hub.files("org/bench")
    assert "media/q001.mp4" not in files and "media/q000.mp4" in files and ".gitattributes" in files
    assert "1 stale file(s) removed" in text


def test_revision_and_tag(hub, build, capfd, caplog):
    rc, text = _publish(capfd, caplog, str(build), "--repo-id", "org/bench", "--revision", "v1", "--tag", "v1.0")
    assert rc == 0, text
    repo = hub.repos["org/bench"]
    assert repo["branches"]["v1"]["commits"] and not repo["branches"]["main"]["commits"]
    assert repo["tags"] == {"v1.0": repo["branches"]["v1"]["commits"][0]["oid"]}
    assert "tagged v1.0" in text


def test_missing_token(hub, build, capfd, caplog, monkeypatch):
    monkeypatch.delenv("MY_HUB_TOKEN")
    rc, text = _publish(capfd, caplog, str(build), "--repo-id", "org/bench")
    assert rc == 1
    assert "no Hub token: set the environment variable MY_HUB_TOKEN" in text
    assert hub.requests == []                                  # failed before any network call


def test_401_bad_token(hub, build, capfd, caplog, monkeypatch):
    monkeypatch.setattr("test_publish_upload.TOKEN", "hf_the_server_expects_another")
    hub.echo_token = True     # even a server that echoes the header must not make us print the token
    rc, text = _publish(capfd, caplog, str(build), "--repo-id", "org/bench")
    assert rc == 1
    assert "rejected the token (401 Unauthorized)" in text
    assert "hf_fixtureSECRET" not in text and "Traceback" not in text
    assert hub.repos == {}


def test_404_repo_not_visible(hub, build, capfd, caplog):
    hub.repos["org/bench"] = {"visibility": "private", "tags": {}, "branches": {"main": {"files": {}, "commits": []}}}
    hub.hidden.add("org/bench")
    rc, text = _publish(capfd, caplog, str(build), "--repo-id", "org/bench")
    assert rc == 1
    assert "dataset repo org/bench or its revision was not found (404)" in text
    assert hub.commits("org/bench") == []


@pytest.mark.parametrize("step", ["create", "commit"])
def test_500_publishes_nothing(hub, build, capfd, caplog, step):
    hub.fail[step] = 500
    rc, text = _publish(capfd, caplog, str(build), "--repo-id", "org/bench")
    assert rc == 1
    assert "failed with 500" in text and "nothing was published" in text and "Traceback" not in text
    if step == "commit":   # LFS blobs went up, but without the commit nothing points at them
        assert hub.blobs and hub.commits("org/bench") == []
        assert set(hub.files("org/bench")) == {".gitattributes"}


def test_unreachable_endpoint(build, capfd, caplog, monkeypatch):
    import huggingface_hub.constants as hc

    with socket.socket() as s:          # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MY_HUB_TOKEN", TOKEN)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    rc, text = _publish(capfd, caplog, str(build), "--repo-id", "org/bench")
    assert rc == 1
    assert f"cannot reach the Hub at http://127.0.0.1:{port}" in text and "ConnectError" in text


def test_silent_endpoint_times_out(build, capfd, caplog, monkeypatch):
    """A Hub that accepts the connection and never answers ends in an error, not a hang."""
    import huggingface_hub.constants as hc

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)                     # the kernel accepts connections; nobody ever reads or answers
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{s.getsockname()[1]}")
        monkeypatch.setenv("MY_HUB_TOKEN", TOKEN)
        monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
        rc, text = _publish(capfd, caplog, str(build), "--repo-id", "org/bench", "--timeout", "0.5")
    assert rc == 1
    assert "gave no answer in time (ReadTimeout)" in text and "nothing was published" in text


def test_offline_mode_is_named(build, capfd, caplog, monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setenv("MY_HUB_TOKEN", TOKEN)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    rc, text = _publish(capfd, caplog, str(build), "--repo-id", "org/bench")
    assert rc == 1 and "HF_HUB_OFFLINE is set" in text


def test_publish_results(hub, tmp_path, capfd, caplog):
    from test_publish import make_run

    run = make_run(tmp_path / "out")
    rc, text = _publish(capfd, caplog, "--results", str(run), "--repo-id", "org/results")
    assert rc == 0, text
    commits = hub.commits("org/results")
    assert len(commits) == 1 and commits[0]["summary"].startswith("mr2bench results: length (run ")
    files = hub.files("org/results")
    assert files["vl-rewardbench/samples.jsonl"] == (run / "vl-rewardbench" / "samples.jsonl").read_bytes()
    assert "mr2bench evaluate-model --model length" in files["README.md"].decode()


def test_upload_stage_directly(hub, tmp_path):
    """The library call, without the CLI: returns the commit and masks nothing it does not need to."""
    from mr2bench.hub.upload import upload_stage

    stage = tmp_path / "s"
    (stage / "sub").mkdir(parents=True)
    (stage / "README.md").write_text("---\nlicense: mit\n---\nhi\n")
    (stage / "sub" / "a.txt").write_bytes(b"\x00\x01")
    pub = upload_stage(stage, "org/x", token=TOKEN, commit_message="m", endpoint=hub.url)
    assert pub.commit_url.startswith(f"{hub.url}/datasets/org/x/commit/") and pub.added == 2
    assert hub.files("org/x")["sub/a.txt"] == b"\x00\x01"


def test_real_video_build_and_eval_run_publish(hub, tmp_path, capfd, caplog):
    """Real builder + real evaluate-model (length baseline), both published to the fake Hub."""
    from mr2bench.cli import main

    build, out = tmp_path / "build", tmp_path / "eval"
    assert main(["build-benchmark", "video", "--out", str(build), "--limit", "3", "--variants", "1"]) == 0
    rc, text = _publish(capfd, caplog, str(build), "--repo-id", "org/video")
    assert rc == 0, text
    files = hub.files("org/video")
    assert "data/items/test-00000-of-00001.parquet" in files and "build_report.json" in files
    referenced = sorted(f for f in files if f.endswith(".mp4"))
    assert 1 <= len(referenced) <= 3          # only the videos items point at, not the whole media folder
    assert main(["evaluate-model", "--model", "length", "--benchmarks", "mr2bench-video", "--data-dir", str(build),
                 "--out", str(out)]) == 0
    rc, text = _publish(capfd, caplog, "--results", str(out / "length"), "--repo-id", "org/video-length")
    assert rc == 0, text
    files = hub.files("org/video-length")
    assert files["leaderboard.md"] == (out / "leaderboard.md").read_bytes()   # taken from OUT/, beside the run
    assert "best_of_n" in files["README.md"].decode()
