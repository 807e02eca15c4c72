"""Browser checks of the Airflow and MLflow UIs after a finished run of every Social Pulse DAG.

The module starts ``airflow standalone`` on a free loopback port with a fresh Airflow and
Social Pulse home, runs collect_posts, annotation, train_sentiment and score_posts for one
date through the REST API, then starts ``mlflow server`` on the tracking store of that run.
Headless Chromium then checks both UIs. The module took 5 to 10.5 minutes on a 2-core
machine that was running other jobs, most of it in the DAG runs.

Every step saves a screenshot to test-artifacts/screenshots/, a failing step also saves the
page source there, and the server logs go to test-artifacts/logs/.

Needs Debian's chromium and chromium-driver (``scripts/install_browser.sh``). Selenium gets
their paths and must not start Selenium Manager, so no browser or driver is downloaded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from conftest import free_port, stop_process_groups

from tasks.airflow_env import airflow_environment
from tasks.settings import PROJECT_ROOT, Settings, reload_settings

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
LOGS = PROJECT_ROOT / "test-artifacts" / "logs"
VENV_BIN = Path(sys.executable).parent

DAY = "2026-12-03"
# Triggered one after another for DAY, as `pulse demo` runs them. The annotation run
# completes the exported sample tasks with their known labels, so training has labels.
PIPELINE = {
    "collect_posts": {},
    "annotation": {"simulate_annotator": True},
    "train_sentiment": {},
    "score_posts": {},
}
# Heading and task names in collect_posts' doc_md, the DAG file's docstring.
COLLECT_HEADING = "Collect posts"
COLLECT_TASKS = ["collect_raw", "validate_raw", "clean", "write_manifest"]
# Connections named in the collect_raw task's docstring, in order.
TOKEN_CONNECTIONS = ["pulse_x", "pulse_mastodon", "pulse_reddit", "pulse_bluesky"]
IMPORT_ERROR_XPATH = ("//*[contains(text(), 'Import Error') or contains(@title, 'Import Error')"
                      " or contains(@aria-label, 'Import Error')]")

SERVER_START_TIMEOUT_S = 300
DAG_RUN_TIMEOUT_S = 1200
PAGE_TIMEOUT_S = 60
STOP_GRACE_S = 30

# No traffic beyond loopback: background services are off, every host name except 127.0.0.1
# fails to resolve, and other requests go to a proxy address where nothing listens.
# Chromium sends loopback requests directly, without the proxy.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--metrics-recording-only",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
    "--window-size=1920,1080",
]


@dataclass
class Server:
    """A server started in its own process group, and where it listens and logs."""

    name: str
    process: subprocess.Popen
    url: str
    log_path: Path


@dataclass
class Airflow:
    """A running ``airflow standalone``, with its home, settings and a REST API session."""

    server: Server
    home: Path
    settings: Settings
    password: str
    api: requests.Session


# --- processes ---------------------------------------------------------------------------


def start_server(name: str, command: list[str], env: dict[str, str], cwd: Path,
                 url: str) -> Server:
    """Start ``command`` in a new session, so that it and its children share one group."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{name}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log_file,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    log.info("started %s (pid %s) for %s, log %s", name, process.pid, url, log_path)
    return Server(name, process, url, log_path)


def stop_process_group(process: subprocess.Popen, name: str,
                       grace_s: float = STOP_GRACE_S) -> None:
    """Stop the process group led by ``process`` and log its exit code."""
    stop_process_groups({name: process}, grace_s)
    log.info("stopped %s (exit code %s)", name, process.returncode)


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str,
               server: Server | None = None, interval_s: float = 2.0) -> Any:
    """Poll ``condition`` until it returns a true value and return that value.

    Fails early when ``server`` exits, and names its log file in either error.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if server is not None and server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with code {server.process.returncode} "
                               f"while waiting for {what}; see {server.log_path}")
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            hint = f"; see {server.log_path}" if server is not None else ""
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}{hint}")
        time.sleep(interval_s)


def http_ok(url: str) -> requests.Response | None:
    """Return the response to a GET of ``url`` when it is 200, else None (also on errors)."""
    try:
        response = requests.get(url, timeout=10)
    except requests.RequestException:
        return None
    return response if response.status_code == 200 else None


# --- Airflow -----------------------------------------------------------------------------


def project_settings(home: Path) -> tuple[Settings, dict[str, str]]:
    """Return the settings and Airflow variables of a Social Pulse home at ``home``.

    The test session has already set Airflow variables for its own home, and
    ``airflow_environment`` keeps variables that are set, so they are removed first. So are
    MLFLOW_* variables, which mlflow.set_tracking_uri and set_registry_uri set for any home.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith(("AIRFLOW", "MLFLOW_"))]:
            patch.delenv(name)
        patch.setenv("PULSE_HOME", str(home))
        settings = reload_settings()
        environment = airflow_environment(settings)
    reload_settings()
    return settings, environment


def server_environment(home: Path, port: int) -> tuple[Settings, dict[str, str]]:
    """Return the settings and the full environment for ``airflow standalone``."""
    settings, airflow_variables = project_settings(home)
    base = {name: value for name, value in os.environ.items()
            if not name.startswith(("AIRFLOW", "MLFLOW_"))}
    environment = {
        **base,
        "PULSE_HOME": str(home),
        **airflow_variables,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        # Task processes report to the execution API, by default on localhost:8080.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # No scheduled or asset-triggered runs: the test triggers each DAG itself, so that
        # the @daily run of collect_posts and runs on asset events do not compete for CPU.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        # `airflow standalone` starts its components as `airflow` from PATH.
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return settings, environment


def airflow_health(url: str) -> bool:
    """Return whether the metadata database, the scheduler and the DAG processor are healthy."""
    response = http_ok(f"{url}/api/v2/monitor/health")
    if response is None:
        return False
    health = response.json()
    return all((health.get(component) or {}).get("status") == "healthy"
               for component in ("metadatabase", "scheduler", "dag_processor"))


def read_admin_password(airflow_home: Path) -> str | None:
    """Return the admin password that the simple auth manager generated, once written.

    Airflow 3.3 writes it to ``simple_auth_manager_passwords.json.generated`` in
    AIRFLOW_HOME (``SimpleAuthManager.get_generated_password_file``) as {"admin": "..."}.
    """
    path = airflow_home / "simple_auth_manager_passwords.json.generated"
    try:
        return json.loads(path.read_text()).get("admin")
    except (OSError, ValueError):
        return None


def api_session(url: str, password: str) -> requests.Session:
    """Return a session that sends a JWT from the simple auth manager's token endpoint."""
    response = requests.post(f"{url}/auth/token",
                             json={"username": "admin", "password": password}, timeout=30)
    assert response.status_code == 201, f"token request failed: {response.status_code} {response.text}"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return session


def api_get(airflow: Airflow, path: str, **params: Any) -> dict:
    response = airflow.api.get(f"{airflow.server.url}/api/v2{path}", params=params, timeout=30)
    assert response.status_code == 200, f"GET {path} failed: {response.status_code} {response.text}"
    return response.json()


def pipeline_dags_parsed(airflow: Airflow) -> bool:
    dags = api_get(airflow, "/dags", limit=100)["dags"]
    return set(PIPELINE) <= {dag["dag_id"] for dag in dags}


def run_dag(airflow: Airflow, dag_id: str, conf: dict[str, Any]) -> str:
    """Trigger ``dag_id`` for DAY through the REST API, wait until it ends and return its run id."""
    body = {"logical_date": f"{DAY}T00:00:00Z", "conf": {"date": DAY, **conf}}
    response = airflow.api.post(f"{airflow.server.url}/api/v2/dags/{dag_id}/dagRuns",
                                json=body, timeout=30)
    assert response.status_code == 200, (
        f"triggering {dag_id} failed: {response.status_code} {response.text}")
    run_id = response.json()["dag_run_id"]
    started = time.monotonic()

    def finished_state() -> str | None:
        state = api_get(airflow, f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"]
        return state if state in ("success", "failed") else None

    state = wait_until(finished_state, DAG_RUN_TIMEOUT_S, f"DAG run {dag_id} {run_id}",
                       server=airflow.server, interval_s=5)
    log.info("DAG run %s %s ended %s after %.0f s", dag_id, run_id, state,
             time.monotonic() - started)
    if state != "success":
        instances = api_get(airflow, f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
                            "/taskInstances")["task_instances"]
        states = {ti["task_id"]: ti["state"] for ti in instances}
        pytest.fail(f"DAG run {dag_id} {run_id} ended {state}; task states {states}; "
                    f"task logs under {airflow.settings.airflow_dir / 'logs'}")
    return run_id


# --- browser -----------------------------------------------------------------------------


def save_page(driver: Any, name: str, page_source: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    if page_source:
        (SCREENSHOTS / f"{name}.html").write_text(driver.page_source, encoding="utf-8")


@contextlib.contextmanager
def ui_step(driver: Any, name: str) -> Iterator[None]:
    """Save a screenshot ``name``.png after the step, or ``name``-failed.png and .html if it fails."""
    try:
        yield
    except BaseException:
        from selenium.common.exceptions import WebDriverException

        with contextlib.suppress(WebDriverException, OSError):
            save_page(driver, f"{name}-failed", page_source=True)
        raise
    save_page(driver, name)


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str,
             timeout_s: float = PAGE_TIMEOUT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s).until(condition, f"timed out waiting for {what}")


def open_markdown_dialog(driver: Any) -> Any:
    """Click the page's documentation button and return the dialog that renders its markdown."""
    from selenium.webdriver.common.by import By

    button = wait_for(driver, lambda d: next(
        (b for b in d.find_elements(By.CSS_SELECTOR, "[data-testid='markdown-button']")
         if b.is_displayed()), None), "the documentation button")
    button.click()
    return wait_for(driver, lambda d: next(
        (e for e in d.find_elements(By.CSS_SELECTOR, "[role='dialog']") if e.is_displayed()),
        None), "the documentation dialog")


def table_row_xpath(link_text: str) -> str:
    """Return an XPath to the table row (ARIA role ``row``) that links to ``link_text``."""
    return f"//*[@role='row'][.//a[normalize-space()='{link_text}']]"


def table_cell(driver: Any, row: Any, header: str) -> str:
    """Return the text of ``row``'s cell under the column header ``header``.

    Assumes one table on the page whose rows, like MLflow's, hold one cell per header.
    """
    from selenium.webdriver.common.by import By

    headers = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "[role='columnheader']")]
    cells = row.find_elements(By.XPATH, "./*[@role='cell']")
    assert header in headers, f"column {header!r} not found in {headers}"
    assert len(cells) == len(headers), f"row cells {[c.text for c in cells]} vs headers {headers}"
    return cells[headers.index(header)].text


def close_dialogs(driver: Any) -> None:
    """Close the dialogs a page opened by itself, such as MLflow's note on its new registry UI."""
    from selenium.webdriver.common.by import By

    for dialog in driver.find_elements(By.CSS_SELECTOR, "[role='dialog']"):
        if dialog.is_displayed():
            dialog.find_element(By.CSS_SELECTOR, "button[aria-label='Close']").click()
    wait_for(driver, lambda d: not any(
        e.is_displayed() for e in d.find_elements(By.CSS_SELECTOR, "[role='dialog']")),
        "the dialogs to close")


def is_uncovered(driver: Any, element: Any) -> bool:
    """Return whether ``element`` is the topmost element at its centre (no overlay above it)."""
    return driver.execute_script(
        "const box = arguments[0].getBoundingClientRect();"
        "const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);"
        "return arguments[0].contains(top);", element)


def click_past_dialogs(driver: Any, element: Any, what: str) -> None:
    """Click ``element``, closing any dialog that opens over it first."""
    from selenium.common.exceptions import ElementClickInterceptedException

    def click(driver: Any) -> bool:
        close_dialogs(driver)
        try:
            element.click()
        except ElementClickInterceptedException:
            return False
        return True

    wait_for(driver, click, what)


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_binaries() -> None:
    """Skip without Debian's chromium and chromedriver, or fail when CI is set."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        message = (f"{' and '.join(missing)} not found: run scripts/install_browser.sh "
                   "to install Debian's chromium and chromium-driver")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def airflow(browser_binaries, tmp_path_factory) -> Iterator[Airflow]:
    """``airflow standalone`` on a free loopback port, with every pipeline DAG parsed."""
    home = tmp_path_factory.mktemp("ui") / "home"
    port = free_port()
    settings, environment = server_environment(home, port)
    airflow_home = Path(environment["AIRFLOW_HOME"])
    airflow_home.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    server = start_server("airflow-standalone", [str(VENV_BIN / "airflow"), "standalone"],
                          environment, home, url)
    try:
        started = time.monotonic()
        wait_until(lambda: airflow_health(url), SERVER_START_TIMEOUT_S,
                   "Airflow's API server, scheduler and DAG processor", server=server)
        password = wait_until(lambda: read_admin_password(airflow_home), 60,
                              "the generated admin password", server=server)
        running = Airflow(server, home, settings, password, api_session(url, password))
        wait_until(lambda: pipeline_dags_parsed(running), SERVER_START_TIMEOUT_S,
                   f"the DAGs {sorted(PIPELINE)} to be parsed", server=server)
        log.info("Airflow ready after %.0f s", time.monotonic() - started)
        yield running
    finally:
        stop_process_group(server.process, server.name)


@pytest.fixture(scope="module")
def pipeline_runs(airflow) -> dict[str, str]:
    """Run every pipeline DAG for DAY in order and return the run id of each."""
    return {dag_id: run_dag(airflow, dag_id, conf) for dag_id, conf in PIPELINE.items()}


@pytest.fixture(scope="module")
def mlflow_server(airflow, pipeline_runs, tmp_path_factory) -> Iterator[Server]:
    """``mlflow server`` on a free loopback port, on the tracking store the pipeline used."""
    settings = airflow.settings
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                   "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    command = [str(VENV_BIN / "mlflow"), "server",
               "--backend-store-uri", settings.tracking_uri,
               "--default-artifact-root", settings.artifact_root, "--no-serve-artifacts",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server = start_server("mlflow-server", command, environment,
                          tmp_path_factory.mktemp("mlflow"), url)
    try:
        wait_until(lambda: http_ok(f"{url}/health"), SERVER_START_TIMEOUT_S,
                   "the MLflow server", server=server)
        yield server
    finally:
        stop_process_group(server.process, server.name)


@pytest.fixture(scope="module")
def browser(browser_binaries) -> Iterator[Any]:
    """Headless Chromium through chromedriver, both at their Debian paths."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def no_selenium_manager(self, *args, **kwargs):
        raise AssertionError("Selenium Manager was called: it may download a browser or driver")

    # Files of an earlier run would mix with this run's.
    for old_file in SCREENSHOTS.glob("*"):
        if old_file.name.startswith(("airflow-", "mlflow-")):
            old_file.unlink()

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    LOGS.mkdir(parents=True, exist_ok=True)
    # A session of its own, so that teardown can stop chromedriver and Chromium as a group.
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(LOGS / "chromedriver.log"),
                      popen_kw={"start_new_session": True})
    # SE_CHROMEDRIVER, when set, would replace executable_path.
    assert service.path == str(CHROMEDRIVER), f"chromedriver taken from {service.path}"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SeleniumManager, "binary_paths", no_selenium_manager)
        driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            if service.process is not None:
                stop_process_group(service.process, "chromedriver", grace_s=10)


@pytest.fixture(scope="module")
def airflow_ui(browser, airflow) -> Any:
    """The browser, logged in to Airflow through the simple auth manager's login form."""
    from selenium.webdriver.common.by import By

    browser.get(f"{airflow.server.url}/")
    with ui_step(browser, "airflow-1-login-form"):
        username = wait_for(browser, lambda d: next(
            (e for e in d.find_elements(By.NAME, "username") if e.is_displayed()), None),
            "the login form")
        username.send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys(airflow.password)
    browser.find_element(By.CSS_SELECTOR, "button[type='submit']").click()
    with ui_step(browser, "airflow-2-home-after-login"):
        wait_for(browser, lambda d: "/auth/" not in d.current_url
                 and d.find_elements(By.CSS_SELECTOR, "a[href$='/dags']"), "the home page")
    return browser


# --- tests -------------------------------------------------------------------------------


def test_pipeline_runs_succeed(airflow, pipeline_runs):
    assert list(pipeline_runs) == list(PIPELINE)
    for dag_id, run_id in pipeline_runs.items():
        run = api_get(airflow, f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
        assert run["state"] == "success", f"{dag_id} {run_id}"
        assert run["conf"]["date"] == DAY


def test_rest_lists_no_import_errors(airflow):
    dag_errors = api_get(airflow, "/importErrors")
    assert dag_errors["total_entries"] == 0, dag_errors["import_errors"]
    plugin_errors = api_get(airflow, "/plugins/importErrors")
    assert plugin_errors["total_entries"] == 0, plugin_errors["import_errors"]


def test_home_shows_no_import_errors(airflow_ui, airflow):
    from selenium.webdriver.common.by import By

    airflow_ui.get(f"{airflow.server.url}/")
    with ui_step(airflow_ui, "airflow-3-home-stats"):
        # The import error count sits beside these stats and is only shown when above 0.
        wait_for(airflow_ui, lambda d: "Active Dags" in d.find_element(By.TAG_NAME, "body").text
                 and "Dag Processor" in d.find_element(By.TAG_NAME, "body").text,
                 "the dashboard's stats and health")
        import_errors = airflow_ui.find_elements(By.XPATH, IMPORT_ERROR_XPATH)
        assert [e.text or e.get_attribute("title") for e in import_errors] == []


def test_dag_list_shows_pipeline(airflow_ui, airflow):
    from selenium.webdriver.common.by import By

    airflow_ui.get(f"{airflow.server.url}/dags")
    with ui_step(airflow_ui, "airflow-4-dag-list"):
        for dag_id in PIPELINE:
            wait_for(airflow_ui, lambda d, dag_id=dag_id: d.find_elements(
                By.CSS_SELECTOR, f"a[href$='/dags/{dag_id}']"), f"{dag_id} in the DAG list")
        import_errors = airflow_ui.find_elements(By.XPATH, IMPORT_ERROR_XPATH)
        assert [e.text or e.get_attribute("title") for e in import_errors] == []


def test_run_graph_shows_tasks(airflow_ui, airflow, pipeline_runs):
    from selenium.webdriver.common.by import By

    run_id = pipeline_runs["collect_posts"]
    airflow_ui.get(f"{airflow.server.url}/dags/collect_posts/runs/{quote(run_id, safe='')}")
    with ui_step(airflow_ui, "airflow-5-collect-posts-run-graph"):
        graph_button = wait_for(airflow_ui, lambda d: next(
            (e for e in d.find_elements(By.CSS_SELECTOR, "[title^='Show Graph']")
             if e.is_displayed()), None), "the graph view button")
        graph_button.click()
        nodes = wait_for(airflow_ui, lambda d: len(d.find_elements(
            By.CSS_SELECTOR, ".react-flow__node")) >= len(COLLECT_TASKS) and d.find_elements(
            By.CSS_SELECTOR, ".react-flow__node"), "the graph's task nodes")
        node_text = " ".join(node.text for node in nodes)
        for task_id in ["resolve_date", *COLLECT_TASKS]:
            assert task_id in node_text
        assert "success" in airflow_ui.find_element(By.TAG_NAME, "body").text.lower()


def test_dag_docs_render_as_html(airflow_ui, airflow):
    from selenium.webdriver.common.by import By

    airflow_ui.get(f"{airflow.server.url}/dags/collect_posts")
    with ui_step(airflow_ui, "airflow-6-collect-posts-dag-docs"):
        dialog = open_markdown_dialog(airflow_ui)
        headings = wait_for(airflow_ui, lambda d: dialog.find_elements(By.TAG_NAME, "h3"),
                            "a rendered heading in the DAG docs")
        assert [h.text for h in headings] == [COLLECT_HEADING]
        bold = [e.text for e in dialog.find_elements(By.TAG_NAME, "strong")]
        assert bold == COLLECT_TASKS
        assert len(dialog.find_elements(By.CSS_SELECTOR, "ol > li")) == len(COLLECT_TASKS)
        assert "###" not in dialog.text


def test_task_docs_render_as_html(airflow_ui, airflow):
    from selenium.webdriver.common.by import By

    # Airflow 3.3 shows a task's doc_md on the task page, not on a task instance's page.
    airflow_ui.get(f"{airflow.server.url}/dags/collect_posts/tasks/collect_raw")
    with ui_step(airflow_ui, "airflow-7-collect-raw-task-docs"):
        dialog = open_markdown_dialog(airflow_ui)
        wait_for(airflow_ui, lambda d: "Fetch the day's posts" in dialog.text,
                 "the collect_raw docstring in the dialog")
        code = [e.text for e in dialog.find_elements(By.TAG_NAME, "code")]
        assert code == ["raw_posts", *TOKEN_CONNECTIONS]
        # An indented docstring paragraph would render as a code block, backticks and all.
        assert dialog.find_elements(By.TAG_NAME, "pre") == []
        assert "`" not in dialog.text


def test_mlflow_lists_champion_model(browser, mlflow_server, airflow):
    from selenium.webdriver.common.by import By

    model = airflow.settings.registry.sentiment_model
    alias = airflow.settings.registry.champion_alias
    response = requests.get(f"{mlflow_server.url}/api/2.0/mlflow/registered-models/alias",
                            params={"name": model, "alias": alias}, timeout=30)
    assert response.status_code == 200, f"{model}@{alias} not found: {response.text}"
    version = response.json()["model_version"]["version"]

    browser.get(f"{mlflow_server.url}/#/models")
    with ui_step(browser, "mlflow-1-registered-models"):
        row = wait_for(browser, lambda d: next(
            (r for r in d.find_elements(By.XPATH, table_row_xpath(model)) if r.is_displayed()),
            None), f"{model} in the registered models list")
        aliased = table_cell(browser, row, "Aliased versions")
        assert aliased.startswith(f"@ {alias}"), aliased
        assert f"Version {version}" in aliased
        link = row.find_element(By.LINK_TEXT, model)
        close_dialogs(browser)
        # The backdrop of a closed dialog fades out, and would grey the screenshot.
        wait_for(browser, lambda d: is_uncovered(d, link) and not any(
            mask.is_displayed() for mask in d.find_elements(By.CSS_SELECTOR, "[class*='modal-mask']")),
            "the list without an overlay")

    click_past_dialogs(browser, link, f"the {model} link")
    with ui_step(browser, "mlflow-2-sentiment-model-page"):
        version_row = wait_for(browser, lambda d: next(
            (r for r in d.find_elements(By.XPATH, table_row_xpath(f"Version {version}"))
             if r.is_displayed()), None), f"version {version} on {model}'s page")
        assert f"/models/{model}" in browser.current_url
        assert table_cell(browser, version_row, "Aliases") == f"@ {alias}"
