// The dashboard as a person sees it: headless Chromium (Debian's), driven by
// playwright-core, against a runner started by scripts/test.sh.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const base = process.env.ORDERLY_URL;
const admin = process.env.ORDERLY_ADMIN_TOKEN;
const customer = process.env.ORDERLY_CUSTOMER_TOKEN;
const flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

async function api(path, token, body, method = "POST") {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.ok(response.status < 300, `${method} ${path}: ${response.status}`);
}

async function withPage(fn) {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: flags });
  try {
    const page = await browser.newPage({ viewport: { width: 1240, height: 860 } });
    const problems = [];
    page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
    page.on("pageerror", (e) => problems.push(String(e)));
    await fn(page);
    assert.deepEqual(problems, [], "the page logged errors");
  } finally {
    await browser.close();
  }
}

test("the dashboard loads without console errors and its numbers follow new orders", async () => {
  await withPage(async (page) => {
    await page.goto(`${base}/#token=${admin}`);
    await page.waitForFunction(() => document.getElementById("orders-total").textContent !== "–");
    assert.equal(await page.evaluate(() => location.hash), "", "the token is taken out of the address bar");
    const before = Number(await page.textContent("#orders-total"));

    await api("/api/v1/products/DASH-TEA", admin, { name: "Dashboard tea", price: "3.50", currency: "EUR", stock: 100 }, "PUT");
    for (let i = 0; i < 6; i++) {
      await api("/api/v1/orders", customer, { items: [{ sku: "DASH-TEA", quantity: 1 + (i % 3) }] });
    }
    await page.waitForFunction((b) => Number(document.getElementById("orders-total").textContent) >= b + 6, before, { timeout: 15000 });
    await page.waitForFunction(() => document.getElementById("revenue").textContent.includes("EUR"), null, { timeout: 15000 });
    assert.match(await page.textContent("#status"), /ok|degraded/);
    assert.equal(await page.textContent("#breaker"), "closed");
    if (process.env.SCREENSHOT) {
      await page.waitForTimeout(2500); // let the orders/s line draw a few points for the picture
      await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
    }
  });
});

test("without a token the dashboard asks for one instead of failing", async () => {
  await withPage(async (page) => {
    await page.goto(`${base}/`);
    await page.waitForSelector("#login:not([hidden])");
    assert.equal(await page.isHidden("#board"), true);
  });
});
