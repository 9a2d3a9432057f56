"""
The dashboard in a real browser: headless Chromium (Debian's package) against a running hub.

A twin_hub process serves the page; the test process plays the twin's topics
(hub_testing.TwinPlayer) on the hub's private domain. Chromium, driven by Playwright, loads
``/``; the test checks that the values on the page move with the twin, then injects a fault on
joint3 and checks that the page shows it on joint3's card (and nowhere else) and in the anomaly
list. ``ROBOT_TWIN_SCREENSHOT=docs/dashboard.png`` keeps the screenshot (it always goes to the
test's folder).
"""
import os
import shutil
import time

from hub_testing import free_port, JOINTS, running_hub, wait_http, write_token
import pytest
from ros_harness import wait_until

pytestmark = pytest.mark.integration
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update',
                  '--disable-sync']


def _chromium():
    path = shutil.which('chromium') or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if path is None:
        pytest.fail('Chromium is not installed: `apt-get install -y chromium` (Debian) — the '
                    'Makefile target that make setup runs installs it')
    return path


def test_the_dashboard_shows_the_live_twin_and_an_injected_fault(tmp_path):
    from playwright.sync_api import sync_playwright
    chromium = _chromium()
    port = free_port()
    write_token(tmp_path / 'token')
    parameters = {'api.address': f'127.0.0.1:{port}', 'api.token_file': str(tmp_path / 'token')}
    with running_hub(tmp_path, parameters) as (process, _observer, player):
        url = f'http://127.0.0.1:{port}/'
        wait_http(url, process)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                                 args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={'width': 1440, 'height': 900})
                errors = []
                page.on('pageerror', lambda exc: errors.append(str(exc)))
                page.goto(url)
                _check_page(page, player, process)
                assert errors == [], f'JavaScript errors on the page: {errors}'
                shot = tmp_path / 'dashboard.png'
                time.sleep(2.0)                   # let the plots fill a little more
                page.screenshot(path=str(shot), full_page=True)
                keep = os.environ.get('ROBOT_TWIN_SCREENSHOT')
                if keep:
                    shutil.copy(shot, keep)
            finally:
                browser.close()


def _text(page, joint, selector):
    return page.inner_text(f'article[data-joint="{joint}"] {selector}')


def _check_page(page, player, process):
    page.wait_for_selector('article[data-joint="joint7"]', timeout=60_000)
    assert page.eval_on_selector_all('article.joint', 'els => els.map(e => e.dataset.joint)') \
        == JOINTS
    page.wait_for_function(
        "document.querySelector('#connection-text').textContent === 'live'", timeout=30_000)

    def value():
        return _text(page, 'joint1', '.effort-measured')

    first = wait_until(lambda: value() if value() != '–' else None, 30, 'an effort value',
                       seen=value)
    wait_until(lambda: value() != first, 30, 'the effort value to change', seen=value)
    assert _text(page, 'joint3', '.level') == 'OK'
    player.set_fault('joint3', 'friction_like')
    wait_until(lambda: _text(page, 'joint3', '.level') == 'ERROR', 30,
               "joint3's card to show the fault", seen=lambda: _text(page, 'joint3', '.level'))
    process.check_alive()
    assert 'friction_like' in _text(page, 'joint3', '.fault')
    assert 'since' in _text(page, 'joint3', '.since')
    for joint in JOINTS:
        if joint != 'joint3':
            assert _text(page, joint, '.level') == 'OK', f'{joint} shows an alarm'
    rows = page.wait_for_selector('#anomalies tbody tr.active', timeout=30_000)
    assert 'joint3' in rows.inner_text() and 'friction_like' in rows.inner_text()
    assert page.inner_text('#anomaly-level') == 'ERROR'
    assert 'h [' in _text(page, 'joint3', '.rul')
