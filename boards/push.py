"""`dvc grafana push`: datasources, folder and boards through Grafana's HTTP API, writing only what differs."""

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import niquests
from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

from boards.panels import POSTGRES, Json
from boards.provisioning import DASHBOARDS_DIR, FOLDER_TITLE, FOLDER_UID, DatasourceSettings, datasources
from boards.thresholds import REPO

SERVER_FIELDS = ("id", "version")  # Grafana adds these to a stored dashboard


class PushError(Exception):
    """Grafana refused or could not be reached; the message says what to do."""


def api_for(url: str, token: str) -> Any:
    """Return a GrafanaApi for a base URL (a sub-path such as /grafana is kept); a str token is sent as Bearer."""
    parts = urlsplit(url)
    path = parts.path if parts.path.endswith("/") or not parts.path else parts.path + "/"
    return GrafanaApi.from_url(urlunsplit(parts._replace(path=path)), credential=token, timeout=10.0)


def fetch(call: Any, *args: Any) -> Any:
    """Return what a GET returns, or None on 404."""
    try:
        return call(*args)
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise


def datasource_matches(current: Json, desired: Json) -> bool:
    """Compare what we manage; Grafana adds ids, versions and defaults of its own."""
    plain = all(current.get(key) == value for key, value in desired.items() if key != "jsonData")
    extra = current.get("jsonData") or {}
    return plain and all(extra.get(key) == value for key, value in desired["jsonData"].items())


def push_datasource(api: Any, desired: Json, *, password: str | None, rotate_password: bool) -> str:
    """Create or update one datasource; send the password only when needed (Grafana never returns it)."""
    uid, needs_password = desired["uid"], desired["type"] == POSTGRES["type"]
    current = fetch(api.datasource.get_datasource_by_uid, uid)
    has_password = bool(current and (current.get("secureJsonFields") or {}).get("password"))
    send_password = needs_password and (rotate_password or not has_password)
    if send_password and not password:
        raise PushError(f"đặt DVC_READER_DB_PASSWORD / set DVC_READER_DB_PASSWORD to provision {uid}")
    body = {**desired, **({"secureJsonData": {"password": password}} if send_password else {})}
    if current is None:
        api.datasource.create_datasource(body)
        return f"Đã tạo / created datasource {uid}"
    if datasource_matches(current, desired) and not send_password:
        return f"Không đổi / unchanged datasource {uid}"
    if current.get("readOnly"):
        raise PushError(
            f"datasource {uid} được cấp bằng tệp / is file-provisioned (read-only): edit the file instead"
        )
    api.datasource.update_datasource_by_uid(uid, body)
    return f"Đã cập nhật / updated datasource {uid}"


def push_folder(api: Any) -> str:
    """Create the boards' folder with its fixed uid, or fix its title."""
    current = fetch(api.folder.get_folder, FOLDER_UID)
    if current is None:
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        return f"Đã tạo / created folder {FOLDER_UID}"
    if current.get("title") == FOLDER_TITLE:
        return f"Không đổi / unchanged folder {FOLDER_UID}"
    api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, version=current.get("version"), overwrite=True)
    return f"Đã cập nhật / updated folder {FOLDER_UID}"


def push_dashboard(api: Any, board: Json) -> str:
    """Save a board into the folder unless Grafana already holds exactly this JSON there."""
    uid = board["uid"]
    current = fetch(api.dashboard.get_dashboard, uid)
    if current is not None:
        stored = {key: value for key, value in current["dashboard"].items() if key not in SERVER_FIELDS}
        if stored == board and (current.get("meta") or {}).get("folderUid") == FOLDER_UID:
            return f"Không đổi / unchanged dashboard {uid}"
        if (current.get("meta") or {}).get("provisioned"):
            raise PushError(
                f"bảng {uid} được cấp bằng tệp / is file-provisioned: Grafana will not overwrite it"
            )
    api.dashboard.update_dashboard(
        {
            "dashboard": {**board, "id": None},
            "folderUid": FOLDER_UID,
            "overwrite": True,
            "message": "dvc grafana push",
        }
    )
    return f"{'Đã tạo / created' if current is None else 'Đã cập nhật / updated'} dashboard {uid}"


def committed_boards() -> list[Json]:
    """The dashboards as built into deploy/grafana/dashboards (what file provisioning also serves)."""
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((REPO / DASHBOARDS_DIR).glob("*.json"))
    ]


def push(
    url: str, token: str, settings: DatasourceSettings, *, password: str | None, rotate_password: bool = False
) -> list[str]:
    """Provision everything; return one line per object saying what happened."""
    api = api_for(url, token)
    try:
        lines = [
            push_datasource(api, source, password=password, rotate_password=rotate_password)
            for source in datasources(settings)
        ]
        lines.append(push_folder(api))
        lines.extend(push_dashboard(api, board) for board in committed_boards())
    except GrafanaUnauthorizedError as exc:
        raise PushError("Grafana từ chối token / Grafana refused the token (401)") from exc
    except GrafanaException as exc:
        raise PushError(f"Grafana trả lời / answered {exc.status_code}: {exc.message}") from exc
    except niquests.exceptions.RequestException as exc:
        raise PushError(f"không kết nối được Grafana / cannot reach Grafana at {url}: {exc}") from exc
    return lines
