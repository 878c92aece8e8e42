import { randomUUID } from "crypto";
import * as http from "http";
import type { AddressInfo } from "net";
import { GetDocumentCommand, SSMClient } from "@aws-sdk/client-ssm";
import type { Logger } from "pino";
import { Fleet, FleetInstance, pingStatus } from "./fleet";
import { MotoAccounts } from "./moto-accounts";
import { CommandRecord, CommandRunner, Invocation, RuntimeTls } from "./ssm-commands";
import {
  commandParameters,
  CommandParameters,
  CommandPlan,
  planDocument,
  planRunShellScript,
  RUN_SHELL_SCRIPT,
  SsmApiError,
} from "./ssm-documents";
import { commandView, getInvocationView, instanceInformation, invocationView, page } from "./ssm-views";

/** Most instance ids one SendCommand takes, as in AWS. */
export const MAX_SEND_COMMAND_INSTANCES = 50;
const MAX_BODY = 8 * 1024 * 1024;
const DEFAULT_DELIVERY_TIMEOUT_S = 3600;

/** What the simulator fronts: the fleet's agents, and moto for everything else. */
export interface SsmSimulatorOptions {
  fleet: Fleet;
  accounts: MotoAccounts;
  /** The runtime's origin and public-key pin: aws:downloadContent from it is pinned, as its cert is self-signed. */
  runtimeTls?: RuntimeTls;
  /** Invocations running at once (default 8). */
  concurrency?: number;
  logger?: Logger;
  /** Port to listen on (default any free one): the sandbox picks it before the runtime starts, to hand it over. */
  port?: number;
}

/** A running SSM simulator. */
export interface SsmSimulator {
  /** http://127.0.0.1:PORT, for `AWS_ENDPOINT_URL_SSM`. */
  endpoint: string;
  runner: CommandRunner;
  close(): Promise<void>;
}

/** The account and region a request speaks for: from its SigV4 credential scope and moto's view of its key. */
interface Scope {
  account: string;
  region: string;
}

type Body = Record<string, unknown>;
type Handler = (body: Body, scope: Scope) => Promise<unknown> | unknown;

// Headers that belong to one hop; the rest of a forwarded request (signature included) reaches moto unchanged.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "host",
  "content-length",
  "content-encoding",
  "expect",
]);

const validation = (message: string) => new SsmApiError("ValidationException", message);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const text = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

/**
 * Starts an SSM endpoint on a free loopback port that speaks awsJson1_1. The fleet-facing actions
 * (DescribeInstanceInformation, SendCommand, GetCommandInvocation, ListCommandInvocations, ListCommands,
 * CancelCommand) are answered from the fleet, scoped to the caller's account and region as AWS scopes them;
 * every other action (documents above all) is relayed to moto unchanged, so a client sees one SSM.
 */
export async function startSsmSimulator(opts: SsmSimulatorOptions): Promise<SsmSimulator> {
  const { fleet, accounts, logger } = opts;
  const runner = new CommandRunner(fleet, { concurrency: opts.concurrency, runtimeTls: opts.runtimeTls });

  const registered = (inst: FleetInstance | undefined, scope: Scope): inst is FleetInstance =>
    !!inst && inst.account === scope.account && inst.region === scope.region && pingStatus(inst) !== undefined;

  const commandsIn = (scope: Scope) =>
    [...runner.commands.values()].filter((c) => c.account === scope.account && c.region === scope.region).reverse();

  function commandIn(scope: Scope, id: unknown, code = "InvalidCommandId"): CommandRecord {
    const record = typeof id === "string" ? runner.commands.get(id) : undefined;
    if (!record || record.account !== scope.account || record.region !== scope.region)
      throw new SsmApiError(code, code === "InvalidCommandId" ? "The command ID is not valid." : "");
    return record;
  }

  async function loadPlan(name: string, version: string | undefined, params: CommandParameters, scope: Scope) {
    if (name === RUN_SHELL_SCRIPT) return planRunShellScript(params);
    // The caller's signature covers its own request only, so moto is asked with the sandbox's credentials for
    // the caller's account: documents there are the ones the caller can run.
    const ssm = new SSMClient({
      region: scope.region,
      endpoint: accounts.endpoint,
      credentials: await accounts.credentials(scope.account),
      maxAttempts: 2,
    });
    try {
      const doc = await ssm.send(new GetDocumentCommand({ Name: name, DocumentVersion: version }));
      if (doc.DocumentType && doc.DocumentType !== "Command")
        throw new SsmApiError("InvalidDocument", `document ${name} is of type ${doc.DocumentType}, not Command`);
      return planDocument(doc.Name ?? name, doc.DocumentVersion ?? "1", doc.Content ?? "", params);
    } catch (err) {
      const code = (err as { name?: string }).name;
      if (err instanceof SsmApiError) throw err;
      if (code === "InvalidDocument" || code === "InvalidDocumentVersion")
        throw new SsmApiError(code, (err as Error).message);
      throw err;
    } finally {
      ssm.destroy();
    }
  }

  function targetIds(body: Body): string[] {
    if (body.InstanceIds !== undefined) return list(body.InstanceIds).map(String);
    const targets = list(body.Targets) as { Key?: string; Values?: unknown[] }[];
    if (targets.length === 0) throw validation("SendCommand needs InstanceIds or Targets");
    if (targets.some((t) => t.Key !== "InstanceIds"))
      throw validation("the sandbox's SSM simulator takes Targets with Key InstanceIds only");
    return targets.flatMap((t) => list(t.Values).map(String));
  }

  const handlers: Record<string, Handler> = {
    DescribeInstanceInformation: (body, scope) => {
      const filters = [
        ...(list(body.InstanceInformationFilterList) as { key?: string; valueSet?: unknown[] }[]).map((f) => ({
          key: f.key,
          values: list(f.valueSet).map(String),
        })),
        ...(list(body.Filters) as { Key?: string; Values?: unknown[] }[]).map((f) => ({
          key: f.Key,
          values: list(f.Values).map(String),
        })),
      ];
      const matches = (inst: FleetInstance, key: string | undefined, values: string[]) => {
        if (key === "InstanceIds") return values.includes(inst.instanceId);
        if (key === "PingStatus") return values.includes(String(pingStatus(inst)));
        if (key === "PlatformTypes") return values.includes(inst.platform);
        if (key === "ResourceType") return values.includes("EC2Instance");
        if (key === "tag-key") return values.some((k) => Object.hasOwn(inst.tags, k));
        if (key?.startsWith("tag:")) return values.includes(inst.tags[key.slice(4)]);
        throw new SsmApiError("InvalidFilterKey", `the sandbox does not filter instance information by ${key}`);
      };
      const found = fleet
        .list()
        .filter((i) => registered(i, scope) && filters.every((f) => matches(i, f.key, f.values)));
      const p = page(found, body.MaxResults, body.NextToken, [5, 50]);
      return { InstanceInformationList: p.items.map(instanceInformation), NextToken: p.nextToken };
    },

    SendCommand: async (body, scope) => {
      const ids = targetIds(body);
      if (ids.length > MAX_SEND_COMMAND_INSTANCES)
        throw validation(
          `1 validation error detected: Value '[${ids.join(", ")}]' at 'instanceIds' failed to satisfy constraint: ` +
            `Member must have length less than or equal to ${MAX_SEND_COMMAND_INSTANCES}`,
        );
      if (ids.length === 0) throw validation("InstanceIds must name at least one instance");
      const name = text(body.DocumentName);
      if (!name) throw validation("1 validation error detected: DocumentName must not be null");
      const unknown = ids.filter((id) => !registered(fleet.get(id), scope));
      if (unknown.length)
        throw new SsmApiError(
          "InvalidInstanceId",
          `Instances [[${unknown.join(", ")}]] not in a valid state for account ${scope.account}`,
        );
      const timeoutSeconds = body.TimeoutSeconds === undefined ? DEFAULT_DELIVERY_TIMEOUT_S : body.TimeoutSeconds;
      if (!Number.isInteger(timeoutSeconds) || Number(timeoutSeconds) < 30 || Number(timeoutSeconds) > 2592000)
        throw validation("TimeoutSeconds must be a whole number from 30 to 2592000");
      const parameters = commandParameters(body.Parameters);
      const plan: CommandPlan = await loadPlan(name, text(body.DocumentVersion), parameters, scope);
      const windows = ids.filter((id) => fleet.get(id)!.platform === "Windows");
      if (plan.linuxOnly && windows.length)
        throw new SsmApiError(
          "UnsupportedPlatformType",
          `The document ${plan.documentName} does not support the platform type of instances ${windows.join(", ")}`,
        );
      const uniqueIds = [...new Set(ids)];
      const record: CommandRecord = {
        commandId: randomUUID(),
        account: scope.account,
        region: scope.region,
        comment: text(body.Comment) ?? "",
        parameters,
        instanceIds: uniqueIds,
        requestedAt: new Date(),
        timeoutSeconds: Number(timeoutSeconds),
        plan,
        invocations: new Map(
          uniqueIds.map((instanceId): [string, Invocation] => [
            instanceId,
            {
              commandId: "",
              instanceId,
              status: "Pending",
              statusDetails: "Pending",
              plugins: plan.steps.map((s) => ({
                name: s.name,
                status: "Pending",
                statusDetails: "Pending",
                responseCode: -1,
                stdout: "",
                stderr: "",
              })),
            },
          ]),
        ),
      };
      for (const inv of record.invocations.values()) inv.commandId = record.commandId;
      runner.submit(record);
      logger?.info({ commandId: record.commandId, document: plan.documentName, instances: uniqueIds }, "SendCommand");
      return { Command: commandView(record) };
    },

    GetCommandInvocation: (body, scope) => {
      if (!text(body.CommandId) || !text(body.InstanceId)) throw validation("CommandId and InstanceId are required");
      const record = commandIn(scope, body.CommandId, "InvocationDoesNotExist");
      const inv = record.invocations.get(String(body.InstanceId));
      if (!inv) throw new SsmApiError("InvocationDoesNotExist", "");
      return getInvocationView(record, inv, body.PluginName);
    },

    ListCommandInvocations: (body, scope) => {
      const records = body.CommandId !== undefined ? [commandIn(scope, body.CommandId)] : commandsIn(scope);
      const all = records.flatMap((r) =>
        [...r.invocations.values()]
          .filter((i) => body.InstanceId === undefined || i.instanceId === body.InstanceId)
          .map((i) => [r, i] as const),
      );
      const p = page(all, body.MaxResults, body.NextToken, [1, 50]);
      return {
        CommandInvocations: p.items.map(([r, i]) => invocationView(r, i, body.Details === true)),
        NextToken: p.nextToken,
      };
    },

    ListCommands: (body, scope) => {
      let records = body.CommandId !== undefined ? [commandIn(scope, body.CommandId)] : commandsIn(scope);
      if (body.InstanceId !== undefined) records = records.filter((r) => r.invocations.has(String(body.InstanceId)));
      for (const f of list(body.Filters) as { key?: string; value?: string }[]) {
        const views = new Map(records.map((r) => [r, commandView(r)]));
        if (f.key === "DocumentName") records = records.filter((r) => views.get(r)!.DocumentName === f.value);
        else if (f.key === "Status") records = records.filter((r) => views.get(r)!.Status === f.value);
        else throw new SsmApiError("InvalidFilterKey", `the sandbox does not filter commands by ${f.key}`);
      }
      const p = page(records, body.MaxResults, body.NextToken, [1, 50]);
      return { Commands: p.items.map(commandView), NextToken: p.nextToken };
    },

    CancelCommand: (body, scope) => {
      const record = commandIn(scope, body.CommandId);
      runner.cancel(record, body.InstanceIds === undefined ? undefined : list(body.InstanceIds).map(String));
      return {};
    },
  };

  async function scopeOf(req: http.IncomingMessage): Promise<Scope> {
    const auth = String(req.headers.authorization ?? "");
    const m = /Credential=([^/,\s]+)\/\d{8}\/([a-z0-9-]+)\/ssm\/aws4_request/.exec(auth);
    if (!m) throw new SsmApiError("MissingAuthenticationTokenException", "Missing Authentication Token");
    return { account: await accounts.callerAccount(m[1]), region: m[2] };
  }

  async function forward(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): Promise<void> {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers))
      if (v !== undefined && !HOP_BY_HOP.has(k)) headers.set(k, Array.isArray(v) ? v.join(", ") : v);
    const method = req.method ?? "POST";
    const answer = await fetch(accounts.endpoint + (req.url ?? "/"), {
      method,
      headers,
      body: method === "GET" || method === "HEAD" ? undefined : body,
      redirect: "manual",
    });
    const payload = Buffer.from(await answer.arrayBuffer());
    const relayed: Record<string, string> = {};
    answer.headers.forEach((v, k) => {
      if (!HOP_BY_HOP.has(k)) relayed[k] = v;
    });
    res.writeHead(answer.status, relayed);
    res.end(payload);
  }

  const reply = (res: http.ServerResponse, status: number, json: unknown, errorType?: string) => {
    const headers: Record<string, string> = {
      "content-type": "application/x-amz-json-1.1",
      "x-amzn-requestid": randomUUID(),
    };
    if (errorType) headers["x-amzn-errortype"] = errorType;
    res.writeHead(status, headers);
    res.end(JSON.stringify(json));
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) return reply(res, 413, { __type: "RequestEntityTooLarge", message: "body over 8 MiB" });
      chunks.push(chunk as Buffer);
    }
    const raw = Buffer.concat(chunks);
    const target = String(req.headers["x-amz-target"] ?? "");
    const action = target.startsWith("AmazonSSM.") ? target.slice("AmazonSSM.".length) : "";
    const handler = Object.hasOwn(handlers, action) ? handlers[action] : undefined;
    if (!handler) return forward(req, res, raw);
    try {
      let body: Body = {};
      try {
        body = raw.length ? (JSON.parse(raw.toString("utf8")) as Body) : {};
      } catch {
        throw new SsmApiError("SerializationException", "the request body is not JSON");
      }
      const out = await handler(body ?? {}, await scopeOf(req));
      reply(res, 200, out);
    } catch (err) {
      if (err instanceof SsmApiError) {
        logger?.debug({ action, error: err.type, message: err.message }, "SSM error answer");
        return reply(res, err.status, { __type: err.type, message: err.message }, err.type);
      }
      logger?.error({ err, action }, "SSM simulator failed");
      reply(res, 500, { __type: "InternalServerError", message: (err as Error).message }, "InternalServerError");
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      logger?.error({ err }, "SSM simulator request failed");
      if (!res.headersSent) reply(res, 502, { __type: "InternalServerError", message: String(err) });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    runner,
    close: () =>
      new Promise((resolve) => {
        runner.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
