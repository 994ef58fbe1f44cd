"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium, for the console's tests.

``make browser`` installs both through apt when they are missing (tests/integration/ensure-browser.sh).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

# Generous: the test machine is shared, and a page waits for the peer behind the gateway.
PAGE_SECONDS = 180.0
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for tool, path in (("chromium", shutil.which("chromium")), ("chromedriver", shutil.which("chromedriver"))):
        if path is None:
            return f"{tool} is not installed: run `make browser` (Debian's chromium and chromium-driver)"
    return None


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """A fresh headless Chromium with its own profile, quit (with its driver) on exit."""
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        # root in CI: Chromium's sandbox needs user namespaces that a root session does not get
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(PAGE_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Browser:
    """One user's browser on the consoles of the test network, saving screenshots as it goes."""

    def __init__(self, driver: WebDriver, screenshots: Path) -> None:
        self.driver = driver
        self.screenshots = screenshots
        self.console_messages: list[dict[str, Any]] = []

    def wait(self, condition: Callable[[WebDriver], Any], seconds: float = PAGE_SECONDS) -> Any:
        return WebDriverWait(self.driver, seconds, poll_frequency=0.25).until(condition)

    def open(self, url: str) -> None:
        self.driver.get(url)
        self._collect_log()

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return str(self.find(css).text)

    def has(self, css: str) -> bool:
        return bool(self.find_all(css))

    def fill(self, fields: dict[str, str]) -> None:
        """Type into inputs and choose in selects, by element id.

        An element found just as the page replaced it is stale ("does not belong to the document"):
        it is found again and filled from the start, as a person would retype it.
        """
        for element_id, value in fields.items():
            for attempt in range(3):
                try:
                    element = self.find(f"#{element_id}")
                    if element.tag_name == "select":
                        element.find_element(By.CSS_SELECTOR, f"option[value='{value}']").click()
                    else:
                        element.clear()
                        element.send_keys(value)
                    break
                except WebDriverException as error:
                    if not _stale(error) or attempt == 2:
                        raise
                    time.sleep(0.5)

    def submit(self, button_id: str) -> None:
        """Click a form's button and wait for the page it leads to."""
        page = self.find("html")
        self.find(f"#{button_id}").click()
        self.wait(lambda _: _gone(page))
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")
        self._collect_log()

    def submit_until_not_unavailable(self, button_id: str, attempts: int = 20) -> None:
        """Submit, and again while the API answers 5xx, as a person would: the form shown with the
        refusal keeps its idempotency key (or reference), so a retry never acts twice."""
        for _ in range(attempts):
            self.submit(button_id)
            if not self.refusal().startswith("Not done"):
                return
            time.sleep(3)

    def refusal(self) -> str:
        boxes = self.find_all("#refusal")
        return str(boxes[0].text) if boxes else ""

    def login(self, base_url: str, api_key: str) -> None:
        self.open(f"{base_url}/console/login")
        if not self.has("#api_key") and self.has("#logout"):
            # still logged in from a test that stopped half-way: log out, so one failure stays one
            self.submit("logout")
            self.open(f"{base_url}/console/login")
        self.fill({"api_key": api_key})
        self.submit("login")
        assert self.has("#logout"), self.driver.page_source[:2000]

    def logout(self) -> None:
        self.submit("logout")
        assert self.has("#api_key")

    def screenshot(self, name: str) -> Path:
        path = self.screenshots / f"{name}.png"
        # the whole page, not just the window, so a long table is in the picture
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1280, max(900, min(int(height) + 40, 4000)))
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1280, 900)
        return path

    def storage(self) -> dict[str, Any]:
        """What the page's script could read: local and session storage and the cookies it can see."""
        return dict(
            self.driver.execute_script(
                "return {local: Object.keys(localStorage).length, session: Object.keys(sessionStorage).length,"
                " cookies: document.cookie}"
            )
        )

    def timings(self) -> dict[str, Any]:
        """The page's weight and render times from the browser's own Performance API."""
        # the first contentful paint may be recorded a frame after the load event that get() waits for
        self.wait(
            lambda d: d.execute_script("return performance.getEntriesByName('first-contentful-paint').length"),
            seconds=30,
        )
        script = """
            const nav = performance.getEntriesByType('navigation')[0];
            const resources = performance.getEntriesByType('resource');
            const paints = Object.fromEntries(performance.getEntriesByType('paint').map(p => [p.name, p.startTime]));
            return JSON.stringify({
              html_bytes: nav.encodedBodySize,
              html_transfer_bytes: nav.transferSize,
              resources: resources.map(r => ({name: r.name, bytes: r.encodedBodySize, transfer_bytes: r.transferSize})),
              response_end_ms: nav.responseEnd,
              dom_content_loaded_ms: nav.domContentLoadedEventEnd,
              load_ms: nav.loadEventEnd,
              first_paint_ms: paints['first-paint'] ?? null,
              first_contentful_paint_ms: paints['first-contentful-paint'] ?? null,
            });
        """
        return dict(json.loads(self.driver.execute_script(script)))

    def _collect_log(self) -> None:
        self.console_messages.extend(self.driver.get_log("browser"))

    def csp_violations(self) -> list[str]:
        self._collect_log()
        return [
            str(entry.get("message"))
            for entry in self.console_messages
            if "Content Security Policy" in str(entry.get("message"))
        ]


def _stale(error: WebDriverException) -> bool:
    """Whether an error says the element is no longer in the page.

    Chromium reports it either as a stale reference or, when the page is replaced mid-call, as an
    "unknown error" whose inspector message says the node "does not belong to the document".
    """
    return isinstance(error, StaleElementReferenceException) or "does not belong to the document" in str(error)


def _gone(element: WebElement) -> bool:
    """Whether a page's element was replaced by the next page (``staleness_of`` knows only one wording)."""
    try:
        element.is_enabled()
    except WebDriverException as error:
        if _stale(error):
            return True
        raise
    return False
