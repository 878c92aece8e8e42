/**
 * The status page's security over HTTP: login only by POSTed token with a CSRF token, the session cookie's flags,
 * the CSP, escaping of hostile labels, the viewer token kept out of the admin API, tokens never echoed, and
 * server-side paging and filters.
 */
import * as fs from "fs";
import * as path from "path";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";
import { HOSTILE_LABEL, seedFleet } from "../fixtures/status-fleet";

type Reply = Awaited<ReturnType<TestRuntime["call"]>>;

const setCookies = (r: Reply) => (r.headers["set-cookie"] as string[] | undefined) ?? [];
const cookiePair = (r: Reply, name: string) =>
  setCookies(r)
    .find((c) => c.startsWith(`${name}=`))
    ?.split(";")[0];
const csrfField = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
const rows = (html: string) => html.match(/<tr class="(active|stale)">/g)?.length ?? 0;

describe("the status page over HTTP", () => {
  let rt: TestRuntime;
  let viewerToken: string;
  beforeAll(async () => {
    rt = await startTestRuntime({ status_page: { viewer_token_file: "./data/viewer.token" } });
    viewerToken = fs.readFileSync(path.join(rt.dir, "data", "viewer.token"), "utf8").trim();
    await seedFleet(rt.runtime.store, 250);
  });
  afterAll(async () => rt?.stop());

  /** The login form's CSRF cookie and field. */
  async function loginForm(): Promise<{ cookie: string; csrf: string }> {
    const r = await rt.call("GET", "/status/login");
    expect(r.status).toBe(200);
    return { cookie: cookiePair(r, "discovery_status_csrf")!, csrf: csrfField(r.text)! };
  }

  async function login(token: string): Promise<{ reply: Reply; cookie: string }> {
    const { cookie, csrf } = await loginForm();
    const reply = await rt.call("POST", "/status/login", new URLSearchParams({ _csrf: csrf, token }).toString(), {
      contentType: "application/x-www-form-urlencoded",
      headers: { cookie },
    });
    const session = cookiePair(reply, "discovery_status_session");
    return { reply, cookie: session ? `${cookie}; ${session}` : cookie };
  }

  it("makes the viewer token file private and sends a visitor without a session to the login form", async () => {
    expect(fs.statSync(path.join(rt.dir, "data", "viewer.token")).mode & 0o777).toBe(0o600);
    const r = await rt.call("GET", "/status");
    expect(r.status).toBe(303);
    expect(r.headers.location).toBe("/status/login");
  });

  it("puts a strict CSP and no-store on every answer, the login form included", async () => {
    for (const p of ["/status", "/status/login", "/status/assets/status.js"]) {
      const r = await rt.call("GET", p);
      expect(r.headers["content-security-policy"]).toBe(
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; " +
          "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      );
      expect(r.headers["cache-control"]).toBe("no-store");
      expect(r.headers["x-frame-options"]).toBe("DENY");
    }
    const page = await rt.call("GET", "/status", undefined, { bearer: viewerToken });
    // Nothing inline for the CSP to have to allow.
    expect(page.text).not.toMatch(/<script>|<style|style="|onclick|javascript:/i);
  });

  it("logs in with the viewer token: a session cookie HttpOnly, Secure, SameSite=Strict, Path=/status", async () => {
    const { reply, cookie } = await login(viewerToken);
    expect(reply.status).toBe(303);
    expect(reply.headers.location).toBe("/status");
    const session = setCookies(reply).find((c) => c.startsWith("discovery_status_session="))!;
    expect(session).toMatch(/; HttpOnly/);
    expect(session).toMatch(/; Secure/);
    expect(session).toMatch(/; SameSite=Strict/);
    expect(session).toMatch(/; Path=\/status(;|$)/);
    expect(session).not.toContain(viewerToken);
    const page = await rt.call("GET", "/status", undefined, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.text).toContain("signed in as viewer");
    expect(page.text).not.toContain(viewerToken);
    expect(page.text).not.toContain(rt.runtime.adminToken);
  });

  it("refuses a wrong token with 401, audits it, and echoes no token", async () => {
    const wrong = "not-the-token-" + "x".repeat(40);
    const { reply } = await login(wrong);
    expect(reply.status).toBe(401);
    expect(reply.text).toContain("That token is not valid here");
    expect(reply.text).not.toContain(wrong);
    expect(cookiePair(reply, "discovery_status_session")).toBeUndefined();
    const audit = await rt.call("GET", "/v1/audit", undefined, { admin: true });
    expect(audit.body.events).toContainEqual(
      expect.objectContaining({ type: "status.login.refused", code: "token_invalid" }),
    );
    expect(JSON.stringify(audit.body)).not.toContain(wrong);
  });

  it("refuses a login POST without the form's CSRF token (403), even with the right token", async () => {
    const { cookie } = await loginForm();
    const noField = await rt.call("POST", "/status/login", `token=${rt.runtime.adminToken}`, {
      contentType: "application/x-www-form-urlencoded",
      headers: { cookie },
    });
    expect(noField.status).toBe(403);
    expect(cookiePair(noField, "discovery_status_session")).toBeUndefined();
    const { csrf } = await loginForm();
    // A field from another browser's form (another CSRF secret) does not pass either.
    const crossed = await rt.call(
      "POST",
      "/status/login",
      new URLSearchParams({ _csrf: csrf, token: rt.runtime.adminToken }).toString(),
      { contentType: "application/x-www-form-urlencoded" },
    );
    expect(crossed.status).toBe(403);
  });

  it("logs out only with the form's CSRF token, and the session is gone after", async () => {
    const { cookie } = await login(rt.runtime.adminToken);
    const page = await rt.call("GET", "/status/tasks", undefined, { headers: { cookie } });
    expect(page.text).toContain("signed in as admin");
    const forged = await rt.call("POST", "/status/logout", "", {
      contentType: "application/x-www-form-urlencoded",
      headers: { cookie },
    });
    expect(forged.status).toBe(403);
    expect((await rt.call("GET", "/status", undefined, { headers: { cookie } })).status).toBe(200);
    const out = await rt.call("POST", "/status/logout", `_csrf=${encodeURIComponent(csrfField(page.text)!)}`, {
      contentType: "application/x-www-form-urlencoded",
      headers: { cookie },
    });
    expect(out.status).toBe(303);
    expect((await rt.call("GET", "/status", undefined, { headers: { cookie } })).status).toBe(303);
  });

  it("keeps the viewer token out of the admin API (401 on /v1/*)", async () => {
    for (const p of ["/v1/nodes", "/v1/audit", "/v1/cas", "/v1/tasks", "/v1/resources/token"]) {
      const r = await rt.call("GET", p, undefined, { bearer: viewerToken });
      expect(r.status).toBe(401);
    }
    const put = await rt.call("PUT", "/v1/resources", "{}", { bearer: viewerToken });
    expect(put.status).toBe(401);
  });

  it("takes a bearer token for scripts, and answers 401 (not a redirect) to a wrong one", async () => {
    expect((await rt.call("GET", "/status/configs", undefined, { bearer: viewerToken })).status).toBe(200);
    expect((await rt.call("GET", "/status/configs", undefined, { admin: true })).status).toBe(200);
    expect((await rt.call("GET", "/status/configs", undefined, { bearer: "x".repeat(43) })).status).toBe(401);
  });

  it("shows a hostile label as text", async () => {
    const page = await rt.call("GET", "/status?label=env%3Dprod", undefined, { bearer: viewerToken });
    expect(page.text).not.toContain(HOSTILE_LABEL);
    expect(page.text).toContain("&lt;script&gt;document.title=&quot;owned&quot;&lt;/script&gt;");
  });

  it("pages the inventory on the server, 100 rows a page, with the filter kept in the links", async () => {
    const first = await rt.call("GET", "/status", undefined, { bearer: viewerToken });
    expect(rows(first.text)).toBe(100);
    expect(first.text).toContain("Page 1 of 3");
    expect(first.text).toMatch(/<a rel="next" href="\/status\?page=2">/);
    const last = await rt.call("GET", "/status?page=3", undefined, { bearer: viewerToken });
    expect(rows(last.text)).toBe(50);
    expect(last.text).not.toContain('rel="next"');
    const gcp = await rt.call("GET", "/status?cloud=gcp&label=env%3Dprod", undefined, { bearer: viewerToken });
    // Of 250 nodes, i % 3 == 1 are GCP and odd i are prod: i % 6 == 1, 42 of them.
    expect(gcp.text).toContain("<strong>42</strong> match the filter");
    expect(rows(gcp.text)).toBe(42);
    expect(gcp.text).not.toMatch(/<td>(aws|azure)<\/td>/);
    const stale = await rt.call("GET", "/status?state=stale", undefined, { bearer: viewerToken });
    expect(rows(stale.text)).toBe(1);
    expect(stale.text).toContain("node-00002");
    expect(stale.text).toContain("stale since");
  });

  it("shows discovery configs, tasks, CAs with the nodes not rotated, and refused joins", async () => {
    const get = async (p: string) => (await rt.call("GET", p, undefined, { bearer: viewerToken })).text;
    const configs = await get("/status/configs");
    expect(configs).toContain("prod-aws");
    expect(configs).toContain("PERMISSION_DENIED: compute.instances.list");
    const tasks = await get("/status/tasks");
    expect(tasks).toContain("ssm-agent-not-registered");
    expect(tasks).toContain("i-0badf00d");
    expect(tasks).toContain("Install and start the SSM agent");
    const cas = await get("/status/cas");
    expect(cas).toContain("rotation in progress");
    expect(cas).toMatch(/<strong>1<\/strong> node\(s\) rotated, <strong>249<\/strong> not rotated yet/);
    expect(cas).toMatch(/SHA256:[A-Za-z0-9+/]{43}/);
    const audit = await get("/status/audit?refused=1");
    expect(audit).toContain("account 999999999999 is not allowed by token aws-token");
    expect(audit).not.toContain("join.accepted");
  });

  it("answers the refresh script with the view alone, and 401 once the session is gone", async () => {
    const frag = await rt.call("GET", "/status/audit", undefined, {
      bearer: viewerToken,
      headers: { "x-status-fragment": "1" },
    });
    expect(frag.status).toBe(200);
    expect(frag.text).not.toContain("<html");
    expect(frag.text).toContain("<h1>Recent audit events</h1>");
    const gone = await rt.call("GET", "/status/audit", undefined, {
      headers: { "x-status-fragment": "1", cookie: "discovery_status_session=expired" },
    });
    expect(gone.status).toBe(401);
  });

  it("rate-limits logins per address (429 after 10 a minute)", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await login("wrong-" + i)).reply.status);
    expect(statuses).toContain(429);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);
  });
});
