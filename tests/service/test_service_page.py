"""The upload page in headless Chromium: pick a fixture image, see its top-1 label, and
"not sure" with the reason below a min_confidence."""
import pytest

from support.browser import needs_chromium, page_at
from support.service import LABELS, fashion_data, png_bytes, reference_top1


@needs_chromium
def test_upload_shows_top1_label(tflite_server, tmp_path):
    from playwright.sync_api import expect
    x = fashion_data()["x_test"][:2]
    expected = [LABELS[k] for k in reference_top1(x[..., None])]
    with page_at(tflite_server.url + "/") as page:
        for i, label in enumerate(expected):
            image = tmp_path / f"item{i}.png"
            image.write_bytes(png_bytes(x[i]))
            page.set_input_files("#file", str(image))
            page.click("#submit")
            expect(page.locator("#result tr.top1 td").first).to_have_text(label, timeout=15000)
            expect(page.locator("#status")).to_contain_text("fashion version 1")
            expect(page.locator("#verdict")).to_have_text("Answer: " + label)
        # the tiny model gives item 1 about 0.49: at 0.8 the page says it is not sure, and why
        page.fill("#minconf", "0.8")
        page.click("#submit")
        expect(page.locator("#verdict")).to_contain_text("Not sure: top probability", timeout=15000)
        expect(page.locator("#verdict")).to_contain_text("below min_confidence 0.8")
        expect(page.locator("#result tr.top1 td").first).to_have_text(expected[1])
        page.fill("#minconf", "")
        # an undecodable upload shows the server's error message
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"not an image")
        page.set_input_files("#file", str(bad))
        page.click("#submit")
        expect(page.locator("#status")).to_contain_text("cannot decode image", timeout=15000)
