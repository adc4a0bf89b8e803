"""`dvc grafana push` against a local HTTP server that checks each request against Grafana's documented API.

Grafana cannot run here, so FakeGrafana answers like Grafana's HTTP API (docs: "Data source API",
"Folder API", "Dashboard API"): Bearer-token auth, the documented request bodies, 404/409/412 answers, and
stored objects returned with the fields Grafana adds (id, version, secureJsonFields instead of secrets).
A request outside that surface, or a body of the wrong shape, fails the test.
"""

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from boards.provisioning import FOLDER_TITLE, FOLDER_UID, DatasourceSettings
from boards.push import PushError, committed_boards, push
from cli.grafana import app

TOKEN = "glsa_test_token"
PASSWORD = "reader-password-for-tests"
SETTINGS = DatasourceSettings("http://prometheus:9090", "postgres:5432", "dvc", "dvc_reader")
DATASOURCE_FIELDS = {
    "name", "type", "access", "url", "user", "database", "basicAuth", "basicAuthUser", "withCredentials",
    "isDefault", "jsonData", "secureJsonData", "uid", "version",
}  # fmt: skip
UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
Json = dict[str, Any]


class Refusal(Exception):
    """An answer other than 200: status and Grafana-style message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class FakeGrafana:
    """Grafana's state and API rules, as documented; records every request."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.datasources: dict[str, Json] = {}
        self.secrets: dict[str, Json] = {}
        self.folders: dict[str, Json] = {}
        self.dashboards: dict[str, Json] = {}
        self.requests: list[tuple[str, str, Json | None]] = []
        self.violations: list[str] = []
        self.next_id = 1

    @property
    def writes(self) -> list[tuple[str, str, Json | None]]:
        return [request for request in self.requests if request[0] != "GET"]

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def handle(self, method: str, path: str, body: Json | None) -> Json:
        routes = [
            ("GET", r"/api/datasources/uid/([^/]+)", self.get_datasource),
            ("POST", r"/api/datasources", self.create_datasource),
            ("PUT", r"/api/datasources/uid/([^/]+)", self.update_datasource),
            ("GET", r"/api/folders/([^/]+)", self.get_folder),
            ("POST", r"/api/folders", self.create_folder),
            ("PUT", r"/api/folders/([^/]+)", self.update_folder),
            ("GET", r"/api/dashboards/uid/([^/]+)", self.get_dashboard),
            ("POST", r"/api/dashboards/db", self.save_dashboard),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(self.prefix + pattern, path)
            if verb == method and match:
                return handler(body, *match.groups())  # type: ignore[operator]
        self.violations.append(f"not part of the API we use: {method} {path}")
        raise Refusal(404, "Not found")

    def require(self, condition: bool, message: str) -> None:
        if not condition:
            self.violations.append(message)
            raise Refusal(400, message)

    # Data source API ----------------------------------------------------------------------------

    def shown(self, uid: str) -> Json:
        stored = self.datasources[uid]
        return {**stored, "secureJsonFields": dict.fromkeys(self.secrets.get(uid, {}), True)}

    def get_datasource(self, _body: None, uid: str) -> Json:
        if uid not in self.datasources:
            raise Refusal(404, "Data source not found")
        return self.shown(uid)

    def check_datasource(self, body: Json | None) -> Json:
        self.require(isinstance(body, dict), "data source body must be a JSON object")
        assert body is not None
        self.require(
            set(body) <= DATASOURCE_FIELDS, f"unknown data source fields {set(body) - DATASOURCE_FIELDS}"
        )
        self.require(
            isinstance(body.get("name"), str) and isinstance(body.get("type"), str), "name and type required"
        )
        self.require(body.get("access") in ("proxy", "direct"), "access must be proxy or direct")
        self.require(isinstance(body.get("jsonData", {}), dict), "jsonData must be an object")
        secure = body.get("secureJsonData", {})
        self.require(
            isinstance(secure, dict) and all(isinstance(v, str) for v in secure.values()),
            "secureJsonData: strings",
        )
        return body

    def create_datasource(self, body: Json | None) -> Json:
        body = self.check_datasource(body)
        uid = body.get("uid") or f"generated{self.next_id}"
        self.require(bool(UID.match(uid)), f"bad uid {uid}")
        if uid in self.datasources or any(d["name"] == body["name"] for d in self.datasources.values()):
            raise Refusal(409, "data source with the same name already exists")
        stored = {key: value for key, value in body.items() if key != "secureJsonData"}
        self.datasources[uid] = {
            **stored,
            "uid": uid,
            "id": self.new_id(),
            "orgId": 1,
            "version": 1,
            "readOnly": False,
        }
        self.secrets[uid] = dict(body.get("secureJsonData", {}))
        return {
            "datasource": self.shown(uid),
            "id": self.datasources[uid]["id"],
            "message": "Datasource added",
            "name": body["name"],
        }

    def update_datasource(self, body: Json | None, uid: str) -> Json:
        body = self.check_datasource(body)
        if uid not in self.datasources:
            raise Refusal(404, "Data source not found")
        current = self.datasources[uid]
        if current["readOnly"]:
            raise Refusal(403, "Cannot update read-only data source")
        stored = {key: value for key, value in body.items() if key != "secureJsonData"}
        self.datasources[uid] = {
            **stored,
            "uid": uid,
            "id": current["id"],
            "orgId": 1,
            "version": current["version"] + 1,
            "readOnly": False,
        }
        self.secrets[uid].update(body.get("secureJsonData", {}))  # Grafana keeps secrets not sent
        return {
            "datasource": self.shown(uid),
            "id": current["id"],
            "message": "Datasource updated",
            "name": body["name"],
        }

    # Folder API ---------------------------------------------------------------------------------

    def get_folder(self, _body: None, uid: str) -> Json:
        if uid not in self.folders:
            raise Refusal(404, "folder not found")
        return self.folders[uid]

    def create_folder(self, body: Json | None) -> Json:
        self.require(isinstance(body, dict) and isinstance(body.get("title"), str), "folder title required")
        assert body is not None
        self.require(set(body) <= {"uid", "title", "parentUid"}, f"unknown folder fields {set(body)}")
        uid = body.get("uid", "")
        self.require(bool(UID.match(uid)), f"bad folder uid {uid}")
        if uid in self.folders:
            raise Refusal(409, "a folder with the same uid already exists")
        self.folders[uid] = {
            "id": self.new_id(),
            "uid": uid,
            "title": body["title"],
            "url": f"/dashboards/f/{uid}",
            "version": 1,
        }
        return self.folders[uid]

    def update_folder(self, body: Json | None, uid: str) -> Json:
        self.require(isinstance(body, dict) and isinstance(body.get("title"), str), "folder title required")
        assert body is not None
        if uid not in self.folders:
            raise Refusal(404, "folder not found")
        folder = self.folders[uid]
        if not body.get("overwrite") and body.get("version") != folder["version"]:
            raise Refusal(412, "the folder has been changed by someone else")
        folder.update(title=body["title"], version=folder["version"] + 1)
        return folder

    # Dashboard API ------------------------------------------------------------------------------

    def get_dashboard(self, _body: None, uid: str) -> Json:
        if uid not in self.dashboards:
            raise Refusal(404, "Dashboard not found")
        return self.dashboards[uid]

    def save_dashboard(self, body: Json | None) -> Json:
        self.require(
            isinstance(body, dict) and isinstance(body.get("dashboard"), dict), "dashboard object required"
        )
        assert body is not None
        self.require(
            set(body) <= {"dashboard", "folderUid", "folderId", "overwrite", "message"},
            f"unknown fields {set(body)}",
        )
        board = body["dashboard"]
        self.require(
            isinstance(board.get("title"), str) and bool(UID.match(board.get("uid", ""))),
            "title and uid required",
        )
        self.require("version" not in board or body.get("overwrite") is True, "version without overwrite")
        if body.get("folderUid") not in self.folders:
            raise Refusal(400, "folder not found")
        current = self.dashboards.get(board["uid"])
        if current and current["meta"]["provisioned"]:
            raise Refusal(400, "Cannot save provisioned dashboard")
        if current and not body.get("overwrite"):
            raise Refusal(412, "A dashboard with the same uid already exists")
        self.require(
            board.get("id") in (None, current and current["dashboard"]["id"]), "id must be null or match"
        )
        version = current["dashboard"]["version"] + 1 if current else 1
        stored = {**board, "id": current["dashboard"]["id"] if current else self.new_id(), "version": version}
        meta = {
            "folderUid": body["folderUid"],
            "provisioned": False,
            "slug": board["uid"],
            "url": f"/d/{board['uid']}",
        }
        self.dashboards[board["uid"]] = {"dashboard": stored, "meta": meta}
        return {
            "id": stored["id"],
            "uid": board["uid"],
            "url": meta["url"],
            "status": "success",
            "version": version,
            "slug": board["uid"],
        }


def handler_for(grafana: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # one write per answer: no Nagle delay between headers and body

        def log_message(self, *_args: Any) -> None:
            pass

        def answer(self, status: int, payload: Json) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = None
            if raw:
                if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                    grafana.violations.append(f"{method} {self.path}: body is not declared as JSON")
                body = json.loads(raw)
            grafana.requests.append((method, self.path, body))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.answer(401, {"message": "Unauthorized"})
                return
            try:
                self.answer(200, grafana.handle(method, self.path, body))
            except Refusal as refusal:
                self.answer(refusal.status, {"message": refusal.message})

        def do_GET(self) -> None:  # noqa: N802 (BaseHTTPRequestHandler's naming)
            self.serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self.serve("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self.serve("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self.serve("DELETE")

    return Handler


def serve(grafana: FakeGrafana) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(grafana))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{grafana.prefix}"
    finally:
        server.shutdown()
        server.server_close()
    assert not grafana.violations, grafana.violations


@pytest.fixture
def grafana() -> FakeGrafana:
    return FakeGrafana()


@pytest.fixture
def url(grafana: FakeGrafana) -> Iterator[str]:
    yield from serve(grafana)


def run_push(url: str, **options: Any) -> list[str]:
    return push(url, TOKEN, SETTINGS, password=options.pop("password", PASSWORD), **options)


def test_first_push_creates_everything_with_fixed_uids(grafana: FakeGrafana, url: str) -> None:
    lines = run_push(url)
    assert [line.split(" / ")[0] for line in lines] == ["Đã tạo"] * 7
    assert [(method, path) for method, path, _ in grafana.writes] == [
        ("POST", "/api/datasources"),
        ("POST", "/api/datasources"),
        ("POST", "/api/folders"),
        *[("POST", "/api/dashboards/db")] * 4,
    ]
    assert set(grafana.datasources) == {"dvc-prometheus", "dvc-postgres"}
    assert grafana.datasources["dvc-postgres"]["user"] == "dvc_reader"
    assert grafana.secrets == {"dvc-prometheus": {}, "dvc-postgres": {"password": PASSWORD}}
    assert grafana.folders[FOLDER_UID]["title"] == FOLDER_TITLE
    for board in committed_boards():
        stored = grafana.dashboards[board["uid"]]
        assert {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")} == board
        assert stored["meta"]["folderUid"] == FOLDER_UID


def test_a_second_push_changes_nothing(grafana: FakeGrafana, url: str) -> None:
    run_push(url)
    written = len(grafana.writes)
    lines = run_push(url)
    assert len(grafana.writes) == written, grafana.writes[written:]
    assert all(line.startswith("Không đổi / unchanged") for line in lines), lines


def test_push_repairs_only_what_drifted_and_keeps_the_password(grafana: FakeGrafana, url: str) -> None:
    run_push(url)
    grafana.dashboards["dvc-unit"]["dashboard"]["title"] = "edited by hand"
    grafana.datasources["dvc-postgres"]["url"] = "elsewhere:5432"
    grafana.folders[FOLDER_UID]["title"] = "renamed"
    written = len(grafana.writes)
    lines = run_push(url, password=None)  # no password in the environment: the stored one stays
    changed = grafana.writes[written:]
    assert [(method, path) for method, path, _ in changed] == [
        ("PUT", "/api/datasources/uid/dvc-postgres"),
        ("PUT", f"/api/folders/{FOLDER_UID}"),
        ("POST", "/api/dashboards/db"),
    ]
    assert "secureJsonData" not in (changed[0][2] or {})
    assert grafana.secrets["dvc-postgres"] == {"password": PASSWORD}
    assert sum(line.startswith("Đã cập nhật") for line in lines) == 3
    assert grafana.dashboards["dvc-unit"]["dashboard"]["title"] == "Đơn vị"


def test_rotate_password_sends_it_again(grafana: FakeGrafana, url: str) -> None:
    run_push(url)
    written = len(grafana.writes)
    run_push(url, password="a-new-password-for-tests", rotate_password=True)
    assert [(m, p) for m, p, _ in grafana.writes[written:]] == [("PUT", "/api/datasources/uid/dvc-postgres")]
    assert grafana.secrets["dvc-postgres"] == {"password": "a-new-password-for-tests"}


def test_creating_the_postgres_datasource_needs_the_password(grafana: FakeGrafana, url: str) -> None:
    with pytest.raises(PushError, match="DVC_READER_DB_PASSWORD"):
        run_push(url, password=None)
    assert set(grafana.datasources) == {"dvc-prometheus"}


def test_a_refused_token_is_a_clear_error(grafana: FakeGrafana, url: str) -> None:
    with pytest.raises(PushError, match="401"):
        push(url, "wrong-token", SETTINGS, password=PASSWORD)
    assert not grafana.writes or all(
        path == "/api/datasources/uid/dvc-prometheus" for _, path, _ in grafana.requests
    )


def test_a_file_provisioned_dashboard_is_not_overwritten(grafana: FakeGrafana, url: str) -> None:
    run_push(url)
    grafana.dashboards["dvc-province"]["meta"]["provisioned"] = True
    grafana.dashboards["dvc-province"]["dashboard"]["title"] = "changed"
    with pytest.raises(PushError, match="provisioned"):
        run_push(url)


def test_grafana_under_a_sub_path() -> None:
    grafana = FakeGrafana(prefix="/grafana")
    for url in serve(grafana):
        run_push(url)
        run_push(url + "/")
    assert len(grafana.dashboards) == 4 and len(grafana.writes) == 7


def test_the_cli_reads_token_and_password_from_the_environment(
    grafana: FakeGrafana, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DVC_GRAFANA_TOKEN", TOKEN)
    monkeypatch.setenv("DVC_READER_DB_PASSWORD", PASSWORD)
    first = CliRunner().invoke(app, ["push", "--url", url, "--prometheus-url", "http://prometheus:9090"])
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(app, ["push", "--url", url, "--prometheus-url", "http://prometheus:9090"])
    assert second.exit_code == 0 and second.output.count("Không đổi") == 7, second.output
    monkeypatch.setenv("DVC_GRAFANA_TOKEN", "wrong")
    refused = CliRunner().invoke(app, ["push", "--url", url])
    assert refused.exit_code == 1 and "401" in refused.output
