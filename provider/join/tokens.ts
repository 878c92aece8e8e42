import * as crypto from "crypto";
import { type Token, validateDocument } from "../model";
import type { JoinMethodDefinition } from "./methods";

/** The store key of a token-method token: its name is the secret, so only its hash is kept. */
export function secretTokenKey(name: string): string {
  return `sha256:${crypto.createHash("sha256").update(name, "utf8").digest("hex")}`;
}

/** The store key of the token `name` as a request with join method `method` names it. */
export function tokenKey(method: string, name: string): string {
  return method === "token" ? secretTokenKey(name) : name;
}

/**
 * The token a stored document holds, validated, or undefined when it holds none. A secret token is stored with its
 * name masked; `name`, which the caller knows, is put back.
 */
export function storedToken(doc: Record<string, unknown>, name: string): Token | undefined {
  // Keyed by the document's whole text and the name, so any change to the stored token is validated afresh.
  const memoKey = `${name}\n${JSON.stringify(doc)}`;
  if (validatedTokens.has(memoKey)) return validatedTokens.get(memoKey);
  const secret = (doc.spec as { join_method?: unknown } | undefined)?.join_method === "token";
  const { resource } = validateDocument(secret ? { ...doc, metadata: { ...(doc.metadata as object), name } } : doc);
  const token = resource?.kind === "token" ? deepFreeze(resource) : undefined;
  if (validatedTokens.size >= MAX_VALIDATED_TOKENS) validatedTokens.clear();
  validatedTokens.set(memoKey, token);
  return token;
}

// Every join reads its token; validating the same document each time was a tenth of a join's CPU in a storm.
const MAX_VALIDATED_TOKENS = 256;
const validatedTokens = new Map<string, Token | undefined>();

// Shared between joins, so no caller may change one.
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Whether a token's name is a secret (join_method token). */
export function isSecretToken(token: Token): boolean {
  return token.spec.join_method === "token";
}

/** What is shown instead of a secret token's name. */
export const REDACTED_NAME = "(secret)";

/**
 * The shared-secret method, the one no cloud attests: knowing the token is the proof. The node is named after its
 * decoded host key (the hash of the key itself, not of its text), so one host key joins once however it is spelled.
 */
export const TOKEN_METHOD: JoinMethodDefinition = {
  needsChallenge: false,
  attest: async (_body, ctx) => {
    const nodeName = `node-${ctx.hostKey.sha256.slice(0, 16)}`;
    return { nodeName, labels: { "discovery/origin": "token" }, principals: [nodeName] };
  },
};
