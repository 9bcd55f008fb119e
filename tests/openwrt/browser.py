#!/usr/bin/python3
"""Loads a page in headless Chromium through chromedriver (Selenium), waits
until a JavaScript condition holds, then saves the DOM and a screenshot.

Used by tests/openwrt_luci.rs instead of `chromium --dump-dom` with a
virtual-time budget, whose result depended on how far the page got in that
budget: here the test names the state it needs and waits for it (bounded).

usage: browser.py URL CONDITION_JS TIMEOUT_S OUT_HTML OUT_PNG PROFILE_DIR
Exit 0 when the condition held (files written), 2 on timeout (files still
written, for the failure message), 1 on any other error.
"""
import sys

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait


def main():
    url, condition, timeout, out_html, out_png, profile = sys.argv[1:7]
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    # Root in a namespace with no network beyond the test's: the flags keep
    # Chromium from reaching out (see the machine notes) and from needing
    # a sandbox or a GPU.
    for a in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1400,2200",
        "--user-data-dir=" + profile,
    ]:
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    status = 0
    try:
        driver.set_page_load_timeout(float(timeout))
        driver.get(url)
        try:
            WebDriverWait(driver, float(timeout), poll_frequency=0.2).until(
                lambda d: d.execute_script("return !!(" + condition + ");")
            )
        except TimeoutException:
            print("condition did not hold within %ss: %s" % (timeout, condition), file=sys.stderr)
            status = 2
        with open(out_html, "w") as f:
            f.write(driver.page_source)
        driver.save_screenshot(out_png)
    finally:
        driver.quit()
    return status


if __name__ == "__main__":
    sys.exit(main())
