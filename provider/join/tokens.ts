import * as crypto from "crypto";
import type { Token } from "../model";
import type { JoinMethodDefinition } from "./methods";

/** The store key of a token-method token: its name is the secret, so only its hash is kept. */
export function secretTokenKey(name: string): string {
  return `sha256:${crypto.createHash("sha256").update(name, "utf8").digest("hex")}`;
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
