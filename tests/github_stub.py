"""A stand-in for the parts of the GitHub REST API the poster uses, served over real HTTP on
127.0.0.1 by stdlib http.server in a thread.

Routes: ``GET /user``; ``GET /repos/O/R``; ``GET /repos/O/R/pulls`` (paginated) and
``/pulls/N``; ``GET|POST /repos/O/R/issues/N/comments`` (paginated with Link headers);
``GET|PATCH|DELETE /repos/O/R/issues/comments/ID`` (404 once deleted). Tokens map to logins; a
token listed in ``app_tokens`` gets 403 on ``GET /user`` like the Actions token and GitHub App
installation tokens (their logins end in ``[bot]``: author type Bot). ``fail(method, path_re,
status, times, headers=...)`` queues failures (5xx, rate limits with ``Retry-After`` or
``x-ratelimit-*`` headers, a permanent 403, a slow answer) for matching requests; ``before(method,
path_re, fn)`` runs ``fn`` before a matching request is handled (to interleave two clients).
Every request is recorded in ``requests``. :func:`workflow_run_event` builds the payload a
``workflow_run`` job reads.
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

BOT = "github-actions[bot]"
APP_BOT = "mcx-review-app[bot]"  # a GitHub App installation token's identity


@dataclass
class Failure:
    method: str
    path: "re.Pattern[str]"
    status: int
    times: int  # how many matching requests fail; -1 = all
    message: str = "Server Error"
    headers: Dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # sleep before answering (a timeout when longer than the client's)


@dataclass
class Hook:
    method: str
    path: "re.Pattern[str]"
    fn: Callable[[Any], None]  # called with the request's JSON payload (None for GET/DELETE)
    times: int  # -1 = every matching request


class GitHubStub:
    def __init__(self, repo: str = "octo/models", page_size: int = 100) -> None:
        self.repo = repo
        self.page_size = page_size  # GitHub caps per_page at 100; tests lower it to force pages
        self.tokens: Dict[str, str] = {"user-token": "reviewer-bot"}
        self.app_tokens: Dict[str, str] = {"actions-token": BOT, "app-token": APP_BOT}
        self.hooks: List[Hook] = []
        self.pulls: Dict[int, Dict[str, Any]] = {}
        self.comments: Dict[int, List[Dict[str, Any]]] = {}
        self.requests: List[Tuple[str, str]] = []
        self.failures: List[Failure] = []
        self._next_id = 1000
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None

    # -- state ---------------------------------------------------------------------------------
    def add_pull(self, number: int, head_sha: str, head_repo: Optional[str] = None,
                 head_branch: Optional[str] = None, state: str = "open") -> None:
        self.pulls[number] = {"number": number, "head_sha": head_sha, "head_repo": head_repo or self.repo,
                              "head_ref": head_branch or f"branch-{number}", "state": state}
        self.comments.setdefault(number, [])

    def before(self, method: str, path: str, fn: Callable[[Any], None], times: int = 1) -> None:
        self.hooks.append(Hook(method, re.compile(path), fn, times))

    def add_comment(self, number: int, login: str, body: str) -> int:
        with self._lock:
            self._next_id += 1
            self.comments.setdefault(number, []).append({"id": self._next_id, "login": login, "body": body})
            return self._next_id

    def fail(self, method: str, path: str, status: int, times: int = 1, message: str = "Server Error",
             headers: Optional[Dict[str, str]] = None, delay: float = 0.0) -> None:
        self.failures.append(Failure(method, re.compile(path), status, times, message, headers or {}, delay))

    def writes(self) -> List[Tuple[str, str]]:
        return [r for r in self.requests if r[0] in ("POST", "PATCH", "DELETE")]

    def bodies(self, number: int) -> List[str]:
        return [c["body"] for c in self.comments.get(number, [])]

    # -- server --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "GitHubStub":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                stub._dispatch(self)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "GitHubStub":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- HTTP ----------------------------------------------------------------------------------
    def _send(self, h: BaseHTTPRequestHandler, status: int, data: Any = None,
              headers: Optional[Dict[str, str]] = None) -> None:
        raw = b"" if data is None else json.dumps(data).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json; charset=utf-8")
            h.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            pass

    def _login(self, h: BaseHTTPRequestHandler) -> Tuple[Optional[str], bool]:
        auth = h.headers.get("Authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else ""
        if token in self.tokens:
            return self.tokens[token], False
        if token in self.app_tokens:
            return self.app_tokens[token], True
        return None, False

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        payload = json.loads(h.rfile.read(length) or b"null") if length else None
        method = h.command
        hooks = []
        with self._lock:
            for hook in self.hooks:
                if hook.times != 0 and hook.method == method and hook.path.search(path):
                    hook.times -= 1 if hook.times > 0 else 0
                    hooks.append(hook)
        for hook in hooks:  # outside the lock: a hook may let other requests through meanwhile
            hook.fn(payload)
        with self._lock:
            self.requests.append((method, path))
            failure = None
            for f in self.failures:
                if f.times != 0 and f.method == method and f.path.search(path):
                    f.times -= 1 if f.times > 0 else 0
                    failure = f
                    break
        if failure is not None:
            if failure.delay:
                time.sleep(failure.delay)
            if failure.status:
                self._send(h, failure.status, {"message": failure.message}, failure.headers)
                return
        login, is_app = self._login(h)
        if login is None:
            self._send(h, 401, {"message": "Bad credentials"})
            return
        self._route(h, method, path, query, payload, login, is_app)

    def _route(self, h: BaseHTTPRequestHandler, method: str, path: str, query: Dict[str, str], payload: Any,
               login: str, is_app: bool) -> None:
        base = f"/repos/{self.repo}"
        if method == "GET" and path == "/user":
            if is_app:
                self._send(h, 403, {"message": "Resource not accessible by integration"})
            else:
                self._send(h, 200, self._user(login))
            return
        if method == "GET" and path == base:
            self._send(h, 200, {"full_name": self.repo, "name": self.repo.split("/")[1],
                                "url": f"{self.url}{base}"})
            return
        if method == "GET" and path == f"{base}/pulls":
            state = query.get("state", "open")
            items = [self._pull(n) for n in sorted(self.pulls, reverse=True)
                     if state == "all" or self.pulls[n]["state"] == state]
            self._page(h, path, query, items)
            return
        m = re.fullmatch(rf"{re.escape(base)}/pulls/(\d+)", path)
        if m and method == "GET":
            n = int(m.group(1))
            self._send(h, 200, self._pull(n)) if n in self.pulls else self._send(h, 404, {"message": "Not Found"})
            return
        m = re.fullmatch(rf"{re.escape(base)}/issues/(\d+)/comments", path)
        if m:
            n = int(m.group(1))
            if n not in self.pulls:
                self._send(h, 404, {"message": "Not Found"})
            elif method == "GET":
                self._page(h, path, query, [self._comment(n, c) for c in self.comments[n]])
            elif method == "POST":
                cid = self.add_comment(n, login, payload["body"])
                self._send(h, 201, self._comment(n, self.comments[n][-1]))
                assert self.comments[n][-1]["id"] == cid
            else:
                self._send(h, 405, {"message": "Method Not Allowed"})
            return
        m = re.fullmatch(rf"{re.escape(base)}/issues/comments/(\d+)", path)
        if m and method in ("PATCH", "DELETE", "GET"):
            cid = int(m.group(1))
            for n, comments in self.comments.items():
                for c in comments:
                    if c["id"] == cid:
                        if method != "GET" and c["login"] != login:
                            self._send(h, 403, {"message": "Must have admin rights to Repository."})
                        elif method == "PATCH":
                            c["body"] = payload["body"]
                            self._send(h, 200, self._comment(n, c))
                        elif method == "DELETE":
                            comments.remove(c)
                            self._send(h, 204)
                        else:
                            self._send(h, 200, self._comment(n, c))
                        return
            self._send(h, 404, {"message": "Not Found"})
            return
        self._send(h, 404, {"message": f"stub has no route {method} {path}"})

    def _page(self, h: BaseHTTPRequestHandler, path: str, query: Dict[str, str], items: List[Any]) -> None:
        per = min(int(query.get("per_page", 30)), self.page_size)
        page = max(1, int(query.get("page", 1)))
        last = max(1, -(-len(items) // per))
        links = []
        rest = "".join(f"&{k}={v}" for k, v in sorted(query.items()) if k not in ("page", "per_page"))
        if page < last:
            links.append(f'<{self.url}{path}?per_page={per}&page={page + 1}{rest}>; rel="next"')
            links.append(f'<{self.url}{path}?per_page={per}&page={last}{rest}>; rel="last"')
        if page > 1:
            links.append(f'<{self.url}{path}?per_page={per}&page=1{rest}>; rel="first"')
        self._send(h, 200, items[(page - 1) * per: page * per], {"Link": ", ".join(links)} if links else None)

    def _user(self, login: str) -> Dict[str, Any]:
        return {"login": login, "id": abs(hash(login)) % 10**6, "type": "Bot" if "[bot]" in login else "User",
                "url": f"{self.url}/users/{login}"}

    def _pull(self, n: int) -> Dict[str, Any]:
        p = self.pulls[n]
        return {"number": n, "state": p["state"], "url": f"{self.url}/repos/{self.repo}/pulls/{n}",
                "issue_url": f"{self.url}/repos/{self.repo}/issues/{n}",
                "html_url": f"https://github.com/{self.repo}/pull/{n}",
                "head": {"sha": p["head_sha"], "ref": p["head_ref"], "repo": {"full_name": p["head_repo"]}},
                "base": {"sha": "0" * 40, "ref": "main", "repo": {"full_name": self.repo}}}

    def _comment(self, n: int, c: Dict[str, Any]) -> Dict[str, Any]:
        return {"id": c["id"], "body": c["body"], "user": self._user(c["login"]),
                "url": f"{self.url}/repos/{self.repo}/issues/comments/{c['id']}",
                "html_url": f"https://github.com/{self.repo}/pull/{n}#issuecomment-{c['id']}",
                "issue_url": f"{self.url}/repos/{self.repo}/issues/{n}"}


def workflow_run_event(head_sha: str, head_repo: str, head_branch: str, base_repo: str = "octo/models",
                       pull_requests: Optional[List[Dict[str, Any]]] = None, event: str = "pull_request",
                       run_id: int = 4242) -> Dict[str, Any]:
    """The parts of a ``workflow_run`` payload the comment job reads, shaped like GitHub's: a fork
    PR's run has an empty ``pull_requests``; a same-repository PR's lists ``{number, head, base}``."""
    return {"action": "completed",
            "workflow_run": {"id": run_id, "event": event, "conclusion": "success", "head_sha": head_sha,
                             "head_branch": head_branch,
                             "head_repository": {"full_name": head_repo, "fork": head_repo != base_repo},
                             "repository": {"full_name": base_repo},
                             "pull_requests": list(pull_requests or [])},
            "repository": {"full_name": base_repo}}


def same_repo_pr(number: int, head_sha: str, head_branch: str) -> Dict[str, Any]:
    """One ``workflow_run.pull_requests`` entry as GitHub writes it."""
    return {"id": number * 1000, "number": number,
            "head": {"ref": head_branch, "sha": head_sha, "repo": {"name": "models"}},
            "base": {"ref": "main", "sha": "0" * 40, "repo": {"name": "models"}}}


def parse_outputs(text: str) -> Dict[str, str]:
    """Read a `$GITHUB_OUTPUT` file the way the runner does (``name=value`` and heredoc blocks)."""
    values: Dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            end = lines.index(delim, i + 1)
            values[name] = "\n".join(lines[i + 1:end])
            i = end + 1
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
            i += 1
        else:
            i += 1
    return values
