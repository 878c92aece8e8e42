/**
 * Renders the status page's templates (templates/*.eta) with Eta, which escapes every `<%= %>` interpolation;
 * the templates use `<%~ %>` (raw) only to place other rendered templates.
 */
import * as path from "path";
import { Eta } from "eta";
import type { ViewId } from "./pages";

const eta = new Eta({ views: path.join(__dirname, "templates"), autoEscape: true, cache: true });

/** Helpers every template may call. */
const helpers = {
  /** An RFC 3339 time as `2025-01-02 03:04:05Z`. */
  time: (t: string | undefined) => (t ? t.replace("T", " ").replace(/\.\d+Z$/, "Z") : ""),
};

/** A whole page: the layout (navigation, logout form, refresh script) around one view. */
export function renderPage(view: ViewId, data: Record<string, unknown>): string {
  return eta.render("./layout", { ...helpers, ...data, body: renderFragment(view, data) });
}

/** One view alone, as the refresh script swaps it into the page. */
export function renderFragment(view: ViewId, data: Record<string, unknown>): string {
  return eta.render(`./${view}`, { ...helpers, ...data });
}

/** A page without the navigation: the login form, or an error. */
export function renderStandalone(template: "login" | "error", data: Record<string, unknown>): string {
  return eta.render(`./${template}`, { ...helpers, ...data });
}
