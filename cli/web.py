"""`dvc web screenshots`: PNGs of the province overview and a unit page, by a real headless Chromium.

Needs Debian's `chromium` and `chromium-driver` and the dev extras (selenium, pillow), which
`scripts/test.sh` installs. The pages are read as a signed-in viewer (an API token); with
DVC_PAGES_SIGNING_KEY the unit page is opened through its signed link, as from an alert mail.
"""

import io
import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import typer

from shared.pagelinks import page_token, unit_page_url

app = typer.Typer(help="Trang web / the web pages.", no_args_is_help=True)
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
MAX_BYTES = 300_000
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}


def open_browser(width: int, height: int) -> Any:
    """Start headless Chromium at a viewport size (a phone's through device emulation)."""
    from selenium import webdriver  # dev extra: imported only by this command
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={max(width, 500)},{height}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500},
    )
    return driver


def sign_in(driver: Any, url: str, token: str) -> None:
    """Sign in through the pages' login form."""
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/pages/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "login-submit").click()
    time.sleep(1)


def full_page_png(driver: Any, width: int) -> bytes:
    """Return a PNG of the whole page (the viewport stretched to the document's height)."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": min(height, 6000), "deviceScaleFactor": 1, "mobile": width < 500},
    )
    png: bytes = driver.get_screenshot_as_png()
    return png


def shrink(png: bytes, limit: int = MAX_BYTES) -> bytes:
    """Quantise (and if needed crop) a screenshot until the PNG is under `limit` bytes."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    while True:
        out = io.BytesIO()
        image.quantize(colors=64).save(out, format="PNG", optimize=True)
        if out.tell() < limit or image.height < 400:
            return out.getvalue()
        image = image.crop((0, 0, image.width, int(image.height * 0.8)))


def worst_unit(url: str, token: str) -> str:
    """Return the first unit below target (as the API ranks the registry), else the first unit."""
    request = urllib.request.Request(f"{url}/api/v1/units", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (an operator's own URL)
        units = json.load(response)
    below = [u for u in units if any(k["status"] == "below" for k in u["kpis"])]
    below.sort(key=lambda u: -sum(k["status"] == "below" for k in u["kpis"]))
    return str((below or units)[0]["unit_id"])


def take_screenshots(
    url: str, token: str, out: Path, *, unit: str | None, pages_key: str | None
) -> list[Path]:
    """Write overview and unit page PNGs at desktop and phone width; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    unit_id = unit or worst_unit(url, token)
    link_token = page_token(pages_key, unit_id, unit_id, int(time.time()) + 3600) if pages_key else None
    written = []
    for size, (width, height) in SIZES.items():
        driver = open_browser(width, height)
        try:
            sign_in(driver, url, token)
            for name, target in (
                ("province", f"{url}/pages/province"),
                ("unit", unit_page_url(url, unit_id, link_token)),
            ):
                driver.get(target)
                path = out / f"{name}-{size}.png"
                path.write_bytes(shrink(full_page_png(driver, width)))
                driver.execute_cdp_cmd(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500},
                )
                written.append(path)
        finally:
            driver.quit()
    return written


@app.command("screenshots")
def screenshots(
    url: str = typer.Option("http://127.0.0.1:8002", help="the pages' address (the metrics service)"),
    token: str = typer.Option(..., envvar="DVC_WEB_TOKEN", help="a viewer API token (dvc tokens create)"),
    out: Path = typer.Option(Path("docs/pages"), help="folder for the PNGs"),
    unit: str | None = typer.Option(None, help="the unit page to show (default: the worst unit)"),
) -> None:
    """Chụp ảnh trang tổng quan và trang đơn vị / screenshot the overview and a unit page (desktop, phone)."""
    key = os.environ.get("DVC_PAGES_SIGNING_KEY") or None
    for path in take_screenshots(url.rstrip("/"), token, out, unit=unit, pages_key=key):
        typer.echo(f"{path} ({path.stat().st_size // 1000} KB)")
