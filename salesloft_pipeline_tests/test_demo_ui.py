"""The demo's Dagster UI in a real browser: Debian's Chromium, headless, driven by Selenium.

Starts `salesloft-pipeline demo` (the UI mode: simulator, webhook endpoint and
`dagster dev` as subprocesses), waits for its backfill, then checks in the
browser that the catalog lists the `salesloft/`, `staging/` and `engagement/`
assets, that the lineage links them (graph edges and the upstream/downstream
lists of an asset page), and that an engagement asset page shows the metadata
of its materialization. Screenshots go to $SALESLOFT_TEST_ARTIFACTS (default:
`<tmp_path>/artifacts`). Finally Ctrl-C (SIGINT) must stop every process the
demo started.

Needs `apt-get install chromium chromium-driver` and `pip install selenium`
(Selenium Manager is never used: the test names /usr/bin/chromedriver, so no
browser or driver is downloaded). Linux only (reads /proc).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = os.environ.get("SALESLOFT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SALESLOFT_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL_HINT = "install them with `apt-get install -y chromium chromium-driver` and `pip install selenium`"
BACKFILL_DONE = "Backfill done."
BACKFILL_SECONDS = float(os.environ.get("SALESLOFT_TEST_BACKFILL_SECONDS") or 25 * 60)
UI_SECONDS = 60  # for one page of the React app to show what is waited for
STOP_SECONDS = 90
PREFIXES = ("salesloft", "staging", "engagement", "writeback")
GROUPS = ("extract", "staging", "engagement", "writeback")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


# -- the demo process ------------------------------------------------------------
class Demo:
    """`salesloft-pipeline demo` in its own session, its output collected by a thread."""

    def __init__(self, home: Path, port: int, log: Path) -> None:
        self.home = home
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self._log = log
        script = Path(sys.executable).with_name("salesloft-pipeline")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "salesloft_pipeline.cli"]
        env = {**os.environ, "SALESLOFT_PIPELINE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        for name in ("DAGSTER_HOME", "SALESLOFT_WAREHOUSE_URL", "SALESLOFT_EVENTS_URL"):
            env.pop(name, None)  # the demo sets its own
        # A runner started in the background (`... &` in a script) ignores SIGINT, and a child
        # would inherit that: the demo must get Ctrl-C as it does in a terminal.
        ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            self.process = subprocess.Popen(
                [*command, "demo", "--port", str(port), "--people", "60", "--days", "5"],
                cwd=home,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if ignored:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        self._reader = threading.Thread(target=self._read, name="demo-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with open(self._log, "w", encoding="utf-8") as log:
            for raw in self.process.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.lines.append(line)
                log.write(line + "\n")
                log.flush()

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def tail(self, n: int = 40) -> str:
        """The demo's own lines (not Dagster's warnings) and the end of its processes' logs."""
        own = [line for line in self.lines if "Warning" not in line and not line.startswith("  ")]
        text = "\n".join(own[-n:])
        for log in sorted((self.home / "demo").glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()
            text += f"\n--- {log.name} (last lines) ---\n" + "\n".join(lines[-15:])
        return text

    def wait_for(self, text: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.said(text):
            if self.process.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"the demo exited with code {self.process.returncode} before {text!r}:\n{self.tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the demo did not print {text!r} within {seconds:.0f} s:\n{self.tail()}")
            time.sleep(1)

    def interrupt(self) -> None:
        """Ctrl-C, as a terminal sends it: SIGINT to the demo's process group."""
        os.killpg(self.process.pid, signal.SIGINT)


# -- processes and ports, from /proc -------------------------------------------------
def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pid: int) -> set[int]:
    parents = _parents()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Running (a zombie, already dead and waiting to be reaped, is not)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def listening_ports(pids: set[int]) -> dict[int, int]:
    """TCP ports the processes listen on: port -> pid."""
    inodes: dict[str, int] = {}
    for pid in pids:
        fd_dir = Path("/proc") / str(pid) / "fd"
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports[int(fields[1].rsplit(":", 1)[1], 16)] = inodes[fields[9]]
    return ports


def answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the browser -------------------------------------------------------------------
def chrome() -> Any:
    """Headless Chromium from Debian's packages; fails (not skips) saying what to install."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"the browser test needs Selenium, Chromium and chromedriver: {INSTALL_HINT}")
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(binary) or shutil.which(binary)):
            pytest.fail(f"the browser test needs {binary} (Debian's Chromium and its driver): {INSTALL_HINT}")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--window-size=1600,1000",
    ):
        options.add_argument(argument)
    profile = tempfile.mkdtemp(prefix="salesloft-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    except Exception:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    driver.set_page_load_timeout(UI_SECONDS)
    driver._salesloft_profile = profile  # removed by close()
    return driver


def close(driver: Any) -> None:
    try:
        driver.quit()
    finally:
        shutil.rmtree(driver._salesloft_profile, ignore_errors=True)


class Browser:
    def __init__(self, driver: Any, base_url: str, artifacts: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.artifacts = artifacts
        self.shots: list[Path] = []

    def open(self, path: str, ready: Callable[[str], bool], what: str, height: int = 1000) -> str:
        """Opens `path` and waits until `ready(page_source)`; returns that page source."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.set_window_size(1600, height)
        self.driver.get(self.base_url + path)

        def check(driver: Any) -> bool:
            self._dismiss_dialogs()
            return ready(driver.page_source)

        try:
            WebDriverWait(self.driver, UI_SECONDS, poll_frequency=0.5).until(check)
        except TimeoutException:
            shot = self.screenshot("failed-" + path.strip("/").replace("/", "_").split("?")[0])
            pytest.fail(f"{self.base_url}{path} did not show {what} within {UI_SECONDS} s (screenshot: {shot})")
        time.sleep(1.0)  # let the layout settle for the screenshot
        return self.driver.page_source

    def _dismiss_dialogs(self) -> bool:
        """A fresh browser profile gets a "Join the Dagster community" dialog over the page: Skip it."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.common.by import By

        clicked = False
        for button in self.driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            try:
                button.click()
                clicked = True
            except WebDriverException:
                pass
        return clicked

    def screenshot(self, name: str) -> Path:
        deadline = time.monotonic() + 10
        while self._dismiss_dialogs() and time.monotonic() < deadline:  # it may open after the page was ready
            time.sleep(1.0)
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{len(self.shots) + 1:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        return path

    def scroll_to(self, text: str) -> None:
        from selenium.webdriver.common.by import By

        for element in self.driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{text}']")[:1]:
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", element)
            time.sleep(0.5)

    def links(self, prefix: str) -> set[str]:
        """The asset keys the page links to under `prefix/` (e.g. {"staging/emails", ...})."""
        from selenium.webdriver.common.by import By

        found = set()
        for anchor in self.driver.find_elements(By.CSS_SELECTOR, f"a[href^='/assets/{prefix}/']"):
            href = anchor.get_attribute("href") or ""
            key = href.split("/assets/", 1)[1].split("?")[0].split("#")[0]
            if key.count("/") == 1:
                found.add(key)
        return found

    def edges(self) -> int:
        from selenium.webdriver.common.by import By

        return len(self.driver.find_elements(By.CSS_SELECTOR, "svg path[marker-end*='arrow']"))

    def section_links(self, heading: str) -> set[str]:
        """Asset keys linked under the asset page's "Upstream assets" / "Downstream assets" heading."""
        from selenium.webdriver.common.by import By

        xpath = (
            f"//*[normalize-space(text())='{heading}']/following-sibling::*[1]//a[starts-with(@href, '/assets/')]"
            f" | //*[normalize-space(text())='{heading}']/parent::*//a[starts-with(@href, '/assets/')]"
        )
        keys = set()
        for anchor in self.driver.find_elements(By.XPATH, xpath):
            href = anchor.get_attribute("href") or ""
            keys.add(href.split("/assets/", 1)[1].split("?")[0])
        return keys


# -- what the definitions say, through the UI's own GraphQL API ---------------------------
def graphql_assets(base_url: str) -> dict[str, set[str]]:
    """Asset key -> the keys it depends on, as the running Dagster knows them."""
    query = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"
    response = httpx.post(f"{base_url}/graphql", json={"query": query}, timeout=60)
    response.raise_for_status()
    nodes = response.json()["data"]["assetNodes"]
    return {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]} for n in nodes}


# -- the test -------------------------------------------------------------------------
@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SALESLOFT_TEST_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nUI test artifacts (screenshots, demo output): {folder}")
    return folder


@pytest.fixture
def demo(tmp_path: Path, artifacts: Path) -> Iterator[Demo]:
    # Checked before the 2-minute start, so a machine without a browser fails at once.
    close(chrome())
    home = tmp_path / "home"
    home.mkdir()
    running = Demo(home, free_port(), artifacts / "demo-output.log")
    try:
        yield running
    finally:
        # Whatever happened: stop what the demo started, by process id.
        if running.process.poll() is None:
            started = descendants(running.process.pid)
            running.interrupt()
            try:
                running.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait(10)
            for pid in started:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)


# pytest-timeout's default (300 s in pyproject.toml) is far below a backfill on a busy machine.
@pytest.mark.timeout(int(BACKFILL_SECONDS) + 15 * 60)
def test_demo_ui_in_a_browser(demo: Demo, artifacts: Path) -> None:
    started = time.monotonic()
    demo.wait_for("Dagster UI: ", 240)
    demo.wait_for(BACKFILL_DONE, BACKFILL_SECONDS)
    backfill_seconds = time.monotonic() - started

    # What the running Dagster knows: every key under each prefix, and their edges.
    deps = graphql_assets(demo.url)
    expected = {p: {k for k in deps if k.startswith(p + "/")} for p in PREFIXES}
    for prefix, keys in expected.items():
        assert keys, f"no {prefix}/ asset in the definitions: {sorted(deps)}"
    assert deps["staging/emails"] == {"salesloft/emails"}
    assert "staging/emails" in deps["engagement/activity_facts"]

    driver = chrome()
    browser = Browser(driver, demo.url, artifacts)
    try:
        # 1. The catalog lists every asset of each prefix (tall window: the list is virtual).
        for prefix in PREFIXES:
            browser.open(f"/assets/{prefix}", lambda _: browser.links(prefix) >= expected[prefix],
                         f"all {len(expected[prefix])} {prefix}/ assets", height=max(1000, 90 * len(expected[prefix])))
            browser.screenshot(f"catalog-{prefix}")
        # The catalog's top level (it shows the prefixes as folders once a prefix page was visited).
        browser.open("/assets", lambda s: all(f'href="/assets/{p}' in s for p in PREFIXES), "every key prefix")
        browser.screenshot("catalog")

        # 2. Lineage, in the global graph: the groups, linked by edges.
        browser.open(
            "/asset-groups",
            lambda s: all(f'data-tooltip="{g}"' in s for g in GROUPS) and browser.edges() >= 3,
            f"the {', '.join(GROUPS)} groups linked by edges",
        )
        browser.screenshot("global-lineage-groups")
        # ... and with staging and engagement expanded: the assets themselves, edge by edge (a
        # window as tall as the column of staging assets: nodes outside the viewport are not rendered).
        expanded = "%2C".join(f"global%40global%3A{g}" for g in ("staging", "engagement"))
        browser.open(
            f"/asset-groups?expanded={expanded}",
            lambda s: ">activity_facts<" in s and ">daily_engagement<" in s and ">emails<" in s
            and browser.edges() >= 10,
            "the staging and engagement assets linked by edges",
            height=max(4000, 140 * (len(expected["staging"]) + len(expected["engagement"]))),
        )
        browser.screenshot("global-lineage-assets")

        # 3. Lineage of one asset: salesloft/emails -> staging/emails -> engagement/activity_facts,
        # in its graph (three nodes, two edges) ...
        browser.open(
            "/assets/staging/emails?view=lineage",
            lambda s: all(f'data-tooltip="{n}"' in s for n in ("emails", "activity_facts", "extract", "engagement"))
            and browser.edges() >= 2,
            "staging/emails between salesloft/emails and engagement/activity_facts",
        )
        browser.screenshot("staging-emails-lineage")
        # ... and write-back: staging/people -> writeback/people -> writeback/cadence_enrollments.
        browser.open(
            "/assets/writeback/people?view=lineage",
            lambda s: all(f'data-tooltip="{n}"' in s for n in ("people", "cadence_enrollments", "writeback"))
            and browser.edges() >= 2,
            "writeback/people between staging/people and writeback/cadence_enrollments",
        )
        browser.screenshot("writeback-people-lineage")
        # ... and in its page's upstream and downstream lists.
        browser.open(
            "/assets/staging/emails",
            lambda _: "salesloft/emails" in browser.section_links("Upstream assets")
            and "engagement/activity_facts" in browser.section_links("Downstream assets"),
            "salesloft/emails upstream and engagement/activity_facts downstream",
        )
        browser.screenshot("staging-emails")

        # 4. An engagement asset page shows its materialization's metadata: row counts and the trend.
        page = browser.open(
            "/assets/engagement/daily_engagement",
            lambda s: "rows_in_these_days" in s and "last_day" in s and "activity days" in s,
            "the metadata of the latest materialization (row counts, the trend)",
            height=1400,
        )
        assert "Never materialized" not in page
        assert "Row count" in page  # dagster/row_count, shown in the status
        assert "sql/marts/daily_engagement.sql" in page  # the definition's metadata too
        browser.screenshot("daily-engagement")
        browser.scroll_to("rows_in_these_days")
        browser.screenshot("daily-engagement-metadata")
    finally:
        close(driver)

    # 5. Ctrl-C stops everything the demo started, and its ports stop answering.
    processes = descendants(demo.process.pid)
    ports = listening_ports(processes | {demo.process.pid})
    assert demo.port in ports, f"the UI port {demo.port} is not among the demo's listening ports {ports}"
    assert len(ports) >= 3, f"expected the UI, the simulator and the webhook endpoint to listen: {ports}"
    demo.interrupt()
    try:
        code = demo.process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the demo did not exit within {STOP_SECONDS} s of SIGINT:\n{demo.tail()}")
    assert demo.said("Stopping..."), demo.tail()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (any(alive(p) for p in processes) or any(answers(p) for p in ports)):
        time.sleep(0.5)
    left = sorted(p for p in processes if alive(p))
    assert not left, f"processes left running after Ctrl-C: {left}"
    still = sorted(p for p in ports if answers(p))
    assert not still, f"ports still answering after Ctrl-C: {still}"
    assert code == 0, f"the demo exited with code {code} after Ctrl-C:\n{demo.tail()}"
    print(f"UI test: backfill done after {backfill_seconds:.0f} s; screenshots: {[p.name for p in browser.shots]}")
