"""Upload a staged folder to the Hub as ONE commit (or none).

The repo is created if needed (private unless asked otherwise); the target branch is created if needed;
files on the branch that the stage does not hold are deleted in the same commit, so a re-publish with
fewer shards cannot leave stale rows behind a ``data_files`` glob. The Hub applies a commit atomically:
a failure before it (network, auth, preupload) publishes nothing; a failure after it (the tag) is reported
with the commit that did land.

The token comes from an environment variable and is passed to ``HfApi`` only; every message that leaves
this module has it masked, even if a server echoed it back.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..schema import DataError

log = logging.getLogger(__name__)

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
KEEP_REMOTE = (".gitattributes",)   # the Hub's own file; never deleted by a mirror commit
REPO_TYPE = "dataset"
DEFAULT_TIMEOUT_S = 300.0   # per network operation (connect, each read, each write), not for the whole upload


class UploadError(RuntimeError):
    """A publish that did not happen (or happened only in part), with a message fit for the user."""


@dataclass(frozen=True)
class Published:
    repo_url: str
    commit_url: str
    commit_oid: str
    revision: str
    tag: str | None
    added: int
    deleted: int


def check_repo_id(repo_id: str) -> str:
    if not REPO_ID.match(repo_id or "") or ".." in repo_id or repo_id.endswith((".git", "-", ".")):
        raise DataError(f"repo id must look like ORG/NAME, got {repo_id!r}", field="--repo-id")
    return repo_id


def read_token(env_name: str) -> str:
    token = os.environ.get(env_name, "").strip()
    if not token:
        raise UploadError(f"no Hub token: set the environment variable {env_name} (a write token from "
                          "https://huggingface.co/settings/tokens), or name another one with --token-env")
    return token


def hub_endpoint() -> str:
    """HF_ENDPOINT as set now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def local_files(stage_dir: Path) -> list[str]:
    """Every file under the stage, as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(stage_dir).as_posix() for p in stage_dir.rglob("*") if p.is_file())


@contextmanager
def network_timeout(seconds: float) -> Iterator[None]:
    """huggingface_hub's shared client waits forever by default; a Hub that never answers must end in an error.

    Swaps in a client factory that wraps the installed one and sets an httpx timeout, restoring it after."""
    import httpx2
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils import _http

    previous = _http._GLOBAL_CLIENT_FACTORY   # no public getter; restored so library users keep their own

    def factory() -> httpx2.Client:
        client = previous()
        client.timeout = httpx2.Timeout(seconds, connect=min(seconds, 30.0))
        return client

    set_client_factory(factory)
    try:
        yield
    finally:
        set_client_factory(previous)


def _mask(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _describe(exc: BaseException, endpoint: str, repo_id: str, step: str) -> str:
    """One clear sentence per failure class (no traceback, no token)."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    if isinstance(exc, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set: publishing needs the network; unset it and retry"
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        server = (exc.server_message or "").strip().splitlines()
        detail = f" (server said: {server[0]})" if server else ""
        if status == 401:
            return f"{step}: the Hub at {endpoint} rejected the token (401 Unauthorized){detail}; check the token"
        if status == 403:
            return f"{step}: the token may not write to {repo_id} (403 Forbidden){detail}"
        if isinstance(exc, RepositoryNotFoundError) or status == 404:
            return (f"{step}: {REPO_TYPE} repo {repo_id} or its revision was not found (404){detail}; check the "
                    "repo id and that the token can see it")
        if status is not None and status >= 500:
            return f"{step}: the Hub at {endpoint} failed with {status}{detail}; nothing was published, retry later"
        return f"{step}: the Hub answered {status}{detail}"
    if isinstance(exc, httpx2.TimeoutException):
        return f"{step}: the Hub at {endpoint} gave no answer in time ({type(exc).__name__}); nothing was published"
    if isinstance(exc, httpx2.TransportError):
        return f"{step}: cannot reach the Hub at {endpoint} ({type(exc).__name__}: {exc}); check HF_ENDPOINT / network"
    return f"{step}: {type(exc).__name__}: {exc}"


def upload_stage(stage_dir: str | Path, repo_id: str, *, token: str, commit_message: str,
                 commit_description: str = "", private: bool = True, revision: str | None = None,
                 tag: str | None = None, endpoint: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> Published:
    """Create the repo/branch if needed and commit the stage as one commit; UploadError on any failure."""
    with network_timeout(timeout_s):
        return _upload(stage_dir, repo_id, token=token, commit_message=commit_message,
                       commit_description=commit_description, private=private, revision=revision, tag=tag,
                       endpoint=endpoint)


def _upload(stage_dir: str | Path, repo_id: str, *, token: str, commit_message: str, commit_description: str,
            private: bool, revision: str | None, tag: str | None, endpoint: str | None) -> Published:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import RevisionNotFoundError

    stage_dir = Path(stage_dir)
    check_repo_id(repo_id)
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    branch = revision or "main"
    api = HfApi(endpoint=endpoint, token=token)
    step = "create repo"
    try:
        repo_url = api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
        if branch != "main":
            step = f"create branch {branch}"
            api.create_branch(repo_id, branch=branch, repo_type=REPO_TYPE, exist_ok=True)
        step = "list remote files"
        try:
            remote = api.list_repo_files(repo_id, repo_type=REPO_TYPE, revision=branch)
        except RevisionNotFoundError:
            remote = []   # an empty repo has no tree yet
        files = local_files(stage_dir)
        stale = sorted(set(remote) - set(files) - set(KEEP_REMOTE))
        ops = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(stage_dir / f)) for f in files]
        ops += [CommitOperationDelete(path_in_repo=f, is_folder=False) for f in stale]
        step = "commit"
        info = api.create_commit(repo_id, ops, commit_message=commit_message,
                                 commit_description=commit_description, repo_type=REPO_TYPE, revision=branch)
    except Exception as exc:  # network/auth/server errors all become one clear message
        raise UploadError(_mask(_describe(exc, endpoint, repo_id, step), token)) from None
    published = Published(repo_url=str(repo_url), commit_url=info.commit_url, commit_oid=info.oid,
                          revision=branch, tag=tag, added=len(files), deleted=len(stale))
    if tag:
        try:
            api.create_tag(repo_id, tag=tag, revision=info.oid, repo_type=REPO_TYPE,
                           tag_message=commit_message)
        except Exception as exc:
            msg = _describe(exc, endpoint, repo_id, f"tag {tag}")
            raise UploadError(_mask(f"{msg}. The commit itself is published: {info.commit_url}; "
                                    f"tag it by hand or re-run with the same --tag", token)) from None
    return published
