"""A real Hugging Face Hub file API on 127.0.0.1 for tests: serves model folders as repos, for `HF_ENDPOINT`.

What huggingface_hub 2.x's `snapshot_download` / `hf_hub_download` call (read from its file_download.py,
_snapshot_download.py and hf_api.py):
- GET  /api/models/{repo}/revision/{rev}: repo info, whose `sha` is the commit;
- GET  /api/models/{repo}/tree/{commit}?recursive=True: the file list (`type`, `path`, `size`, `oid`, `lfs`);
- HEAD /{repo}/resolve/{commit}/{file}: `X-Repo-Commit`, `ETag` (the git blob id) and `Content-Length`; for an LFS
  file (here *.safetensors) also `X-Linked-Etag` (its sha256) and `X-Linked-Size`, which the client prefers;
- GET  /{repo}/resolve/{commit}/{file}: the bytes.
Errors carry `X-Error-Code` as the hub's do: an unknown repo is 404 `RepoNotFound`; a gated repo's files are 401
`GatedRepo` without a token and 403 with a wrong one (its metadata stays public, as on the hub).

Dataset repos (`datasets={"org/name": folder}`) answer the same calls under `/api/datasets/{repo}/...` and
`/datasets/{repo}/resolve/...` (huggingface_hub's `repo_info`, `list_repo_tree` and `hf_hub_download` with
repo_type="dataset"); *.parquet files are LFS files there, as the hub stores them.

Uploads (what `create_repo` and `upload_folder` call, read from hf_api.py, _commit_api.py and _upload_pipeline.py):
- POST /api/validate-yaml {"content": README.md}: 400 with `errors` unless its front matter is a YAML mapping;
- POST /api/repos/create {"name", "organization", "visibility"?}: 409 when the repo exists (exist_ok accepts it);
- POST /api/models/{repo}/preupload/{rev} {"files": [{"path", "sample", "size"}]}: every file "regular" (so the
  content comes inline in the commit, base64; no LFS or Xet transfer);
- POST /api/models/{repo}/commit/{rev}: NDJSON of a `header`, `file` ({path, content, encoding}) and
  `deletedFile` lines, applied to the repo, which the download calls then serve.
With `write_token` set, each of them answers 401 unless `Authorization: Bearer <write_token>`. `.created` holds
each created repo's visibility.

`HubServer({"org/name": folder}, gated={"org/name": "token"}, datasets={"org/data": folder}, write_token=None)`,
`.url` for HF_ENDPOINT, `.log` of (method, path, Authorization), `.close()`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlparse

from loopback_server import LoopbackHTTPServer, LoopbackServer

COMMIT = "a" * 40  # every repo is one commit


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Repo:
    """A folder as a repo: each file's bytes and the ids the hub gives it."""

    def __init__(self, folder: Path | None = None):  # None: a repo just created, empty
        self.files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
                      if p.is_file()} if folder else {}

    def entry(self, path: str) -> dict:
        data = self.files[path]
        entry = {"type": "file", "path": path, "size": len(data), "oid": _git_blob_id(data)}
        if path.endswith((".safetensors", ".parquet")):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "LoopbackHTTPServer"

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, payload, head: bool = False) -> None:
        self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"}, head)

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def _route(self, head: bool) -> None:
        owner = self.server.owner
        owner.record("HEAD" if head else "GET", self.path, self.headers.get("Authorization"))
        repos, parts = self._repos_of(unquote(urlparse(self.path).path).strip("/").split("/"))
        api = parts[:2] == ["api", "models"]
        repo_id = "/".join(parts[2:4] if api else parts[:2])
        rest = parts[4:] if api else parts[2:]
        repo = repos.get(repo_id)
        if repo is None:
            return self._send(404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound",
                                                                         "X-Error-Message": "Repository not found"},
                              head)
        if api and rest[:1] in (["revision"], []):
            return self._json({"id": repo_id, "sha": COMMIT, "gated": "auto" if repo_id in owner.gated else False,
                               "siblings": [{"rfilename": name} for name in repo.files]}, head)
        if api and rest[:1] == ["tree"]:
            return self._json([repo.entry(name) for name in repo.files], head)
        if rest[:1] == ["resolve"] and "/".join(rest[2:]) in repo.files:
            return self._file(repo_id, repo, "/".join(rest[2:]), head)
        self._send(404, b'{"error":"Entry not found"}', {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT},
                   head)  # a HEAD answer has no body: one would corrupt the next response on the connection

    def _file(self, repo_id: str, repo: _Repo, path: str, head: bool) -> None:
        token = self.server.owner.gated.get(repo_id)
        if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
            status = 403 if self.headers.get("Authorization") else 401
            return self._send(status, b'{"error":"gated"}', {
                "X-Error-Code": "GatedRepo",
                "X-Error-Message": f"Access to model {repo_id} is restricted. You must have access to it and be "
                                   "authenticated to access it. Please log in."}, head)
        entry = repo.entry(path)
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{entry["oid"]}"', "Accept-Ranges": "bytes"}
        if "lfs" in entry:
            headers |= {"X-Linked-Etag": f'"{entry["lfs"]["oid"]}"', "X-Linked-Size": str(entry["size"])}
        self._send(200, repo.files[path], headers, head)

    def do_POST(self) -> None:
        owner = self.server.owner
        owner.record("POST", self.path, self.headers.get("Authorization"))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if owner.write_token and self.headers.get("Authorization") != f"Bearer {owner.write_token}":
            return self._send(401, b'{"error":"Invalid username or password."}',
                              {"X-Error-Message": "Invalid username or password."})
        parts = unquote(urlparse(self.path).path).strip("/").split("/")
        if parts == ["api", "repos", "create"]:
            return self._create(json.loads(body))
        if parts == ["api", "validate-yaml"]:
            return self._validate_yaml(json.loads(body)["content"])
        repo = owner.repos.get("/".join(parts[2:4])) if parts[:2] == ["api", "models"] else None
        if repo is None:
            return self._send(404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"})
        if parts[4:5] == ["preupload"]:
            return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                         for f in json.loads(body)["files"]]})
        if parts[4:5] == ["commit"]:
            return self._commit("/".join(parts[2:4]), repo, body)
        self._send(404, b'{"error":"not found"}')

    def _create(self, payload: dict) -> None:
        owner = self.server.owner
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        if repo_id in owner.repos:
            return self._send(409, b'{"error":"You already created this model repo"}')
        owner.repos[repo_id] = _Repo()
        owner.created[repo_id] = payload.get("visibility") or "public"
        self._json({"url": f"{owner.url}/{repo_id}", "name": repo_id})

    def _validate_yaml(self, content: str) -> None:
        import yaml

        try:
            metadata = yaml.safe_load(content.split("---\n", 2)[1]) if content.startswith("---\n") else {}
        except (yaml.YAMLError, IndexError) as exc:
            metadata = str(exc)
        if not isinstance(metadata, dict):
            error = {"errors": [{"message": f"invalid YAML front matter: {metadata}"}], "warnings": []}
            return self._send(400, json.dumps(error).encode(), {"Content-Type": "application/json"})
        self._json({"errors": [], "warnings": []})

    def _commit(self, repo_id: str, repo: _Repo, body: bytes) -> None:
        for line in body.splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                repo.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "deletedFile":
                repo.files.pop(item["value"]["path"], None)
        repo.files = dict(sorted(repo.files.items()))
        self._json({"commitUrl": f"{self.server.owner.url}/{repo_id}/commit/{COMMIT}", "commitOid": COMMIT,
                    "success": True})

    # Dataset repos answer the same calls as models, under /api/datasets/{repo}/... and /datasets/{repo}/resolve/...
    def _repos_of(self, parts: list[str]) -> tuple[dict[str, _Repo], list[str]]:
        """The repos a path asks of (models or datasets), and the path as a model's would read."""
        owner = self.server.owner
        if parts[:2] == ["api", "datasets"]:
            return owner.datasets, ["api", "models", *parts[2:]]
        if parts[:1] == ["datasets"]:
            return owner.datasets, parts[1:]
        return owner.repos, parts


class HubServer(LoopbackServer):
    """Start with `HubServer(repos)`, point HF_ENDPOINT at `.url`, stop with `.close()` (or as a context manager)."""

    def __init__(self, repos: dict[str, Path], gated: dict[str, str] | None = None,
                 datasets: dict[str, Path] | None = None, write_token: str | None = None):
        self.repos = {repo_id: _Repo(Path(folder)) for repo_id, folder in repos.items()}
        self.datasets = {repo_id: _Repo(Path(folder)) for repo_id, folder in (datasets or {}).items()}
        self.gated = gated or {}
        self.write_token = write_token
        self.created: dict[str, str] = {}  # repo id -> visibility, of the repos created through the API
        self.log: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        self.url = self.start(_Handler)

    def record(self, method: str, path: str, authorization: str | None) -> None:
        with self._lock:
            self.log.append((method, path, authorization))

    def downloads(self) -> list[str]:
        """The file paths whose bytes were sent (GET on /resolve/)."""
        with self._lock:
            return [path.split("/resolve/", 1)[1].split("/", 1)[1] for method, path, _ in self.log
                    if method == "GET" and "/resolve/" in path]

