/**
 * The status page in a real browser (Debian's chromium, driven by playwright-core): a refused login, a login with
 * the viewer token, every view, a filter, 10,000 nodes paged, the view refreshing in place, reading without
 * JavaScript, no CSP violation; and the screenshot the README shows (docs/status-page.png, rewritten with UPDATE_SCREENSHOT=1).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Browser, BrowserContext, chromium, Page } from "playwright-core";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";
import { seedFleet } from "../fixtures/status-fleet";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
// The README's picture is refreshed on request (UPDATE_SCREENSHOT=1); otherwise the shot goes to a temp dir, so a
// test run never leaves the working tree changed.
const SCREENSHOT = process.env.UPDATE_SCREENSHOT
  ? path.join(__dirname, "..", "..", "docs", "status-page.png")
  : path.join(os.tmpdir(), `pd-status-page-${process.pid}.png`);
const NODES = 10_000;

describe("the status page in chromium", () => {
  let rt: TestRuntime;
  let viewerToken: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const cspViolations: string[] = [];

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing: run npm run setup (it installs Debian's chromium) or set CHROMIUM_PATH`);
    rt = await startTestRuntime({ status_page: { viewer_token_file: "./data/viewer.token" } });
    viewerToken = fs.readFileSync(path.join(rt.dir, "data", "viewer.token"), "utf8").trim();
    await seedFleet(rt.runtime.store, NODES);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1440, height: 900 } });
    page = await context.newPage();
    page.on("console", (m) => {
      if (/Content[ -]Security[ -]Policy/i.test(m.text())) cspViolations.push(m.text());
    });
  });
  afterAll(async () => {
    await browser?.close();
    await rt?.stop();
  });

  it("sends a visitor to the login form and refuses a wrong token with 401", async () => {
    await page.goto(`${rt.url}/status`);
    expect(new URL(page.url()).pathname).toBe("/status/login");
    await page.fill("#token", "not-a-token-" + "x".repeat(32));
    const [answer] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/status/login") && r.request().method() === "POST"),
      page.click("button[type=submit]"),
    ]);
    expect(answer.status()).toBe(401);
    await expect(page.textContent("[role=alert]")).resolves.toContain("That token is not valid here");
    // The form is shown again, empty: the token typed is not echoed back.
    expect(await page.inputValue("#token")).toBe("");
  });

  it("logs in with the viewer token and shows the first of 100 pages of 10,000 nodes", async () => {
    await page.fill("#token", viewerToken);
    await Promise.all([page.waitForURL(/\/status$/), page.click("button[type=submit]")]);
    expect(page.url()).not.toContain(viewerToken);
    await expect(page.textContent("header .role")).resolves.toContain("viewer");
    expect(await page.locator("table.nodes tbody tr").count()).toBe(100);
    await expect(page.textContent("nav.pager")).resolves.toContain(`Page 1 of ${NODES / 100}`);
    await expect(page.textContent(".summary")).resolves.toContain("10000");
    // The hostile label is shown as text; its script never ran.
    expect(await page.title()).toBe("Inventory · discovery");
    await expect(page.textContent("table.nodes")).resolves.toContain("<script>document.title");
    // A stale node is marked.
    await expect(page.textContent("table.nodes tr.stale")).resolves.toContain("stale since");
    await Promise.all([page.waitForURL(/page=2/), page.click("a[rel=next]")]);
    expect(await page.locator("table.nodes tbody tr").count()).toBe(100);
    await expect(page.textContent("table.nodes tbody tr:first-child td.name")).resolves.toBe("node-00100");
  });

  it("filters by cloud and label, keeping the filter across pages", async () => {
    await page.goto(`${rt.url}/status`);
    await page.selectOption("select[name=cloud]", "gcp");
    await page.fill("input[name=label]", "env=prod");
    await Promise.all([page.waitForURL(/cloud=gcp/), page.click("form.filter button")]);
    // Of 10,000 nodes, i % 3 == 1 are GCP and odd i are prod: i % 6 == 1, 1,667 of them.
    await expect(page.textContent(".summary")).resolves.toContain("1667");
    const clouds = await page.locator("table.nodes tbody tr td:nth-child(4)").allTextContents();
    expect(clouds).toHaveLength(100);
    expect(new Set(clouds)).toEqual(new Set(["gcp"]));
    const labels = await page.locator("table.nodes tbody tr td.labels").allTextContents();
    expect(labels.every((l) => l.includes("env=prod"))).toBe(true);
    const next = await page.getAttribute("a[rel=next]", "href");
    expect(next).toContain("cloud=gcp");
    expect(next).toContain("label=env%3Dprod");
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.goto(`${rt.url}/status`);
    await page.screenshot({ path: SCREENSHOT });
    expect(fs.statSync(SCREENSHOT).size).toBeGreaterThan(10_000);
  });

  it("shows discovery configs, tasks, certificate authorities and the audit log", async () => {
    await page.click("nav.views >> text=Discovery configs");
    await expect(page.textContent("table.configs")).resolves.toContain("PERMISSION_DENIED");
    expect(await page.locator("table.configs tbody tr").count()).toBe(2);

    await page.click("nav.views >> text=Tasks");
    await expect(page.textContent("main")).resolves.toContain("ssm-agent-not-registered");
    await expect(page.textContent("main")).resolves.toContain("i-0deadbee");
    await expect(page.textContent("main")).resolves.toContain("Install and start the SSM agent");

    await page.click("nav.views >> text=Certificate authorities");
    await expect(page.textContent("main")).resolves.toContain("rotation in progress");
    await expect(page.textContent("main")).resolves.toContain(`${NODES - 1} not rotated yet`);
    await expect(page.textContent("table.pending")).resolves.toContain("node-00001");

    await page.click("nav.views >> text=Audit");
    await page.click("text=Show refusals only");
    await expect(page.textContent("table.audit")).resolves.toContain("is not allowed by token aws-token");
    // The refused status page login of the first test is there too, with its reason.
    await expect(page.textContent("table.audit")).resolves.toContain("status.login.refused");
  });

  it("refreshes the view in place, without reloading the page", async () => {
    await page.goto(`${rt.url}/status/audit`);
    await page.evaluate(() => ((globalThis as unknown as { loadedOnce: boolean }).loadedOnce = true));
    await rt.runtime.store.appendAudit({
      at: new Date().toISOString(),
      type: "join.refused",
      source: "10.9.9.9",
      code: "token_expired",
      reason: "the token expired while you watched",
    });
    await page.waitForSelector("text=the token expired while you watched", { timeout: 15_000 });
    expect(await page.evaluate(() => (globalThis as unknown as { loadedOnce?: boolean }).loadedOnce)).toBe(true);
  });

  it("reads without JavaScript", async () => {
    const plain = await browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false });
    try {
      const p = await plain.newPage();
      await p.goto(`${rt.url}/status/login`);
      await p.fill("#token", viewerToken);
      await Promise.all([p.waitForURL(/\/status$/), p.click("button[type=submit]")]);
      expect(await p.locator("table.nodes tbody tr").count()).toBe(100);
      await p.goto(`${rt.url}/status/tasks`);
      await expect(p.textContent("main")).resolves.toContain("ssm-agent-not-registered");
      await Promise.all([p.waitForURL(/\/status\/login$/), p.click("form.logout button")]);
      await p.goto(`${rt.url}/status`);
      expect(new URL(p.url()).pathname).toBe("/status/login");
    } finally {
      await plain.close();
    }
  });

  it("broke no CSP rule", () => {
    expect(cspViolations).toEqual([]);
  });
});
