/**
 * The status page (SPEC §4, `GET /status`): server-rendered HTML over the fleet's read models, readable without
 * JavaScript; a small same-origin script refreshes the current view in place. Logging in takes the admin token or
 * the read-only viewer token in a POSTed form (never a URL); the session is a random id in an HttpOnly, Secure,
 * SameSite=Strict cookie; forms carry a CSRF token; every answer carries a strict CSP.
 */
import * as fs from "fs";
import * as path from "path";
import fastifyCookie from "@fastify/cookie";
import fastifyCsrf from "@fastify/csrf-protection";
import fastifyFormbody from "@fastify/formbody";
import { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { RateLimiter } from "../../join/rate-limit";
import { bearerToken, secretMatcher } from "../admin-routes";
import type { Store } from "../store/types";
import { auditRows, caRows, configRows, NodeQuery, nodesPage, taskRows, ViewId, VIEWS } from "./pages";
import { renderFragment, renderPage, renderStandalone } from "./render";
import { SESSION_COOKIE, StatusRole, StatusSessions } from "./sessions";

/** What the status page needs of the runtime. */
export interface StatusPageOptions {
  store: Store;
  adminToken: string;
  /** The read-only viewer token, when `status_page.viewer_token_file` is configured. */
  viewerToken?: string;
  sessionTtlMs: number;
  /** Open tasks are those seen within this (2 × poll_interval, as `GET /v1/tasks`). */
  taskTtlMs: number;
  clusterName: string;
  logger: Logger;
  now: () => Date;
}

/** The Content-Security-Policy of every status answer: nothing inline, nothing from elsewhere. */
export const STATUS_CSP =
  "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const COOKIE_OPTS = { path: "/status", httpOnly: true, secure: true, sameSite: "strict" } as const;

// The header the refresh script sends to get the current view without the page around it.
const FRAGMENT_HEADER = "x-status-fragment";

const ASSETS: Record<string, string> = { "status.css": "text/css", "status.js": "text/javascript" };

/** Registers `/status` and its views, login, logout and assets (an encapsulated plugin: its cookie and form parsers
 * stay out of the API). */
export async function statusPage(app: FastifyInstance, opts: StatusPageOptions): Promise<void> {
  const { store } = opts;
  const sessions = new StatusSessions(opts.sessionTtlMs, () => opts.now().getTime());
  const isAdmin = secretMatcher(opts.adminToken);
  const isViewer = opts.viewerToken ? secretMatcher(opts.viewerToken) : () => false;
  const roleOf = (token: string): StatusRole | undefined => {
    // Both are checked, whatever the first answers, so the time taken does not say which token it was.
    const admin = isAdmin(token);
    const viewer = isViewer(token);
    return admin ? "admin" : viewer ? "viewer" : undefined;
  };
  // Guessing a 32-byte token is hopeless, but a login form is the first thing a scanner hammers.
  const logins = new RateLimiter(10, 10, () => opts.now().getTime());
  const assets = new Map(
    Object.keys(ASSETS).map((f) => [f, fs.readFileSync(path.join(__dirname, "assets", f), "utf8")]),
  );

  await app.register(fastifyCookie);
  await app.register(fastifyFormbody);
  await app.register(fastifyCsrf, { cookieKey: "discovery_status_csrf", cookieOpts: COOKIE_OPTS });

  app.addHook("onSend", async (_req, reply) => {
    reply.header("content-security-policy", STATUS_CSP);
    reply.header("x-content-type-options", "nosniff");
    reply.header("x-frame-options", "DENY");
    reply.header("referrer-policy", "no-referrer");
    reply.header("cache-control", "no-store");
  });
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err.code?.startsWith("FST_CSRF_"))
      return sendHtml(reply, 403, renderStandalone("error", { title: "Form expired", message: CSRF_MESSAGE }));
    if (err.statusCode && err.statusCode < 500)
      return sendHtml(reply, 400, renderStandalone("error", { title: "Bad request", message: err.message }));
    opts.logger.error({ err }, "status page request failed");
    return sendHtml(reply, 500, renderStandalone("error", { title: "Error", message: "Internal error; see the log." }));
  });

  /** The caller's role: a bearer token (scripts) or the session cookie; undefined when not logged in. */
  const whoIs = (req: FastifyRequest): StatusRole | undefined => {
    const bearer = bearerToken(req);
    if (bearer) return roleOf(bearer);
    return sessions.get(req.cookies[SESSION_COOKIE])?.role;
  };

  app.get<{ Params: { file: string } }>("/status/assets/:file", async (req, reply) => {
    const body = assets.get(req.params.file);
    if (body === undefined) return sendHtml(reply, 404, renderStandalone("error", { title: "Not found", message: "" }));
    return reply.type(`${ASSETS[req.params.file]}; charset=utf-8`).send(body);
  });

  app.get("/status/login", async (req, reply) => {
    if (whoIs(req)) return reply.redirect("/status", 303);
    return sendHtml(reply, 200, renderStandalone("login", { csrf: reply.generateCsrf(), cluster: opts.clusterName }));
  });

  app.post<{ Body: { token?: unknown } }>("/status/login", { preHandler: app.csrfProtection }, async (req, reply) => {
    const refuse = (status: number, message: string) =>
      sendHtml(
        reply,
        status,
        renderStandalone("login", { csrf: reply.generateCsrf(), cluster: opts.clusterName, message }),
      );
    if (!logins.take(req.ip)) return refuse(429, "Too many login attempts from this address; wait a minute.");
    const token = typeof req.body?.token === "string" ? req.body.token.trim() : "";
    const role = roleOf(token);
    const at = opts.now().toISOString();
    if (!role) {
      const reason = token ? "the token is neither the admin token nor the viewer token" : "no token was given";
      await store.appendAudit({ at, type: "status.login.refused", source: req.ip, code: "token_invalid", reason });
      opts.logger.warn({ source: req.ip }, `status page login refused: ${reason}`);
      return refuse(401, "That token is not valid here. Use the admin token or the viewer token.");
    }
    await store.appendAudit({ at, type: "status.login.accepted", source: req.ip, method: role });
    reply.setCookie(SESSION_COOKIE, sessions.create(role), { ...COOKIE_OPTS, maxAge: sessions.maxAgeSeconds });
    return reply.redirect("/status", 303);
  });

  app.post("/status/logout", { preHandler: app.csrfProtection }, async (req, reply) => {
    sessions.delete(req.cookies[SESSION_COOKIE]);
    reply.clearCookie(SESSION_COOKIE, COOKIE_OPTS);
    return reply.redirect("/status/login", 303);
  });

  const view =
    (id: ViewId, load: (req: FastifyRequest) => Promise<Record<string, unknown>>) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      const role = whoIs(req);
      const fragment = req.headers[FRAGMENT_HEADER] === "1";
      if (!role) {
        // A bearer that matched nothing, or the refresh script of a page whose session ended, gets a 401.
        if (bearerToken(req) || fragment)
          return sendHtml(reply, 401, renderStandalone("error", { title: "Not logged in", message: LOGIN_MESSAGE }));
        return reply.redirect("/status/login", 303);
      }
      const data = { ...(await load(req)), view: id, updatedAt: opts.now().toISOString() };
      if (fragment) return sendHtml(reply, 200, renderFragment(id, data));
      return sendHtml(
        reply,
        200,
        renderPage(id, { ...data, role, cluster: opts.clusterName, views: VIEWS, csrf: reply.generateCsrf() }),
      );
    };

  const nodes = view("nodes", async (req) => ({ nodes: await nodesPage(store, req.query as NodeQuery) }));
  app.get("/status", nodes);
  app.get("/status/nodes", nodes);
  app.get(
    "/status/configs",
    view("configs", async () => ({ configs: await configRows(store) })),
  );
  app.get(
    "/status/tasks",
    view("tasks", async () => ({ tasks: await taskRows(store, opts.now(), opts.taskTtlMs) })),
  );
  app.get(
    "/status/cas",
    view("cas", async () => ({ cas: await caRows(store) })),
  );
  app.get(
    "/status/audit",
    view("audit", async (req) => {
      const refusedOnly = (req.query as { refused?: string }).refused === "1";
      return { events: await auditRows(store, refusedOnly), refusedOnly };
    }),
  );
}

const CSRF_MESSAGE = "The form expired or did not come from this page. Go back, reload it and submit again.";
const LOGIN_MESSAGE = "Log in at /status/login with the admin token or the viewer token.";

function sendHtml(reply: FastifyReply, status: number, html: string): FastifyReply {
  return reply.code(status).type("text/html; charset=utf-8").send(html);
}
