#!/usr/bin/env node
// @ts-check
/*
 * Stand-in for Pulumi's Go Node.js language host, used when the Go module proxy
 * cannot serve github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3
 * (see docs/SETUP.md). It speaks the same gRPC LanguageRuntime protocol the CLI
 * expects and starts programs exactly as the Go host does: `node
 * @pulumi/pulumi/cmd/run --monitor ... <entry point>`, with config in
 * PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS. Only what the engine needs for
 * preview/up/destroy/refresh of Node programs is implemented; the rest answers
 * UNIMPLEMENTED, which the CLI tolerates.
 */
"use strict";
const path = require("path");

const childProcess = require("child_process");

// The gRPC stubs ship with @pulumi/pulumi; resolve them next to this script's repo.
const sdkDir = path.dirname(require.resolve("@pulumi/pulumi/package.json", { paths: [path.join(__dirname, "..")] }));
const grpc = require(require.resolve("@grpc/grpc-js", { paths: [sdkDir] }));
const langRpc = require(path.join(sdkDir, "proto", "language_grpc_pb.js"));
const langProto = require(path.join(sdkDir, "proto", "language_pb.js"));
const pluginProto = require(path.join(sdkDir, "proto", "plugin_pb.js"));
const SDK_VERSION = require(path.join(sdkDir, "package.json")).version;

// Exit code @pulumi/pulumi/cmd/run uses after it already printed an actionable message.
const EXIT_AFTER_USER_MESSAGE = 32;

const args = process.argv.slice(2).filter((a) => !a.startsWith("-"));
if (process.argv.includes("-version") || process.argv.includes("--version")) {
  process.stdout.write(`${SDK_VERSION}\n`);
  process.exit(0);
}
let engineAddress = args[0] || "";
/** @type {Set<import("child_process").ChildProcess>} */
const children = new Set();

/** Resolve @pulumi/pulumi/cmd/run from the program's directory, as the Go host does. */
function locateRun(programDir) {
  const override = process.env.PULUMI_LANGUAGE_NODEJS_RUN_PATH;
  try {
    return require.resolve(override || "@pulumi/pulumi/cmd/run", { paths: [programDir] });
  } catch {
    throw new Error(`It looks like the Pulumi SDK has not been installed in ${programDir}. Have you run npm install?`);
  }
}

/** Old-style config keys (<pkg>:config:<name>) are what cmd/run reads. */
function configJson(req) {
  const out = {};
  req.getConfigMap().forEach((value, key) => {
    const idx = key.indexOf(":");
    const ns = idx < 0 ? key : key.slice(0, idx);
    const name = idx < 0 ? "" : key.slice(idx + 1).replace(/^config:/, "");
    out[`${ns}:config:${name}`] = value;
  });
  return JSON.stringify(out);
}

function unimplemented(callback) {
  callback({ code: grpc.status.UNIMPLEMENTED, message: "not implemented by this language host" });
}

const service = {
  handshake(call, callback) {
    engineAddress = call.request.getEngineAddress() || engineAddress;
    callback(null, new langProto.LanguageHandshakeResponse());
  },
  getRequiredPlugins(_call, callback) {
    callback(null, new langProto.GetRequiredPluginsResponse());
  },
  getRequiredPackages(_call, callback) {
    // Dynamic providers come from pulumi-resource-pulumi-nodejs on PATH; no plugin is downloaded.
    callback(null, new langProto.GetRequiredPackagesResponse());
  },
  getPluginInfo(_call, callback) {
    const info = new pluginProto.PluginInfo();
    info.setVersion(SDK_VERSION);
    callback(null, info);
  },
  about(_call, callback) {
    const res = new langProto.AboutResponse();
    res.setExecutable(process.execPath);
    res.setVersion(process.version);
    callback(null, res);
  },
  getProgramDependencies(_call, callback) {
    callback(null, new langProto.GetProgramDependenciesResponse());
  },
  runtimeOptionsPrompts(_call, callback) {
    callback(null, new langProto.RuntimeOptionsResponse());
  },
  installDependencies(call) {
    // Dependencies are installed by npm before pulumi runs; nothing to do here.
    call.end();
  },
  cancel(_call, callback) {
    for (const child of children) child.kill("SIGINT");
    callback(
      null,
      new (require(require.resolve("google-protobuf/google/protobuf/empty_pb.js", { paths: [sdkDir] })).Empty)(),
    );
  },
  run(call, callback) {
    const req = call.request;
    const info = req.getInfo();
    const programDir = (info && info.getProgramDirectory()) || req.getPwd() || process.cwd();
    const entryPoint = (info && info.getEntryPoint()) || req.getProgram() || ".";
    const options = (info && info.getOptions() && info.getOptions().toJavaScript()) || {};
    const res = new langProto.RunResponse();
    let runPath;
    try {
      runPath = locateRun(programDir);
    } catch (err) {
      res.setError(String(err.message));
      return callback(null, res);
    }
    const argv = [runPath];
    const add = (k, v) => {
      if (v !== undefined && v !== null && v !== "") argv.push(`--${k}`, String(v));
    };
    add("monitor", req.getMonitorAddress());
    add("engine", engineAddress);
    add("organization", req.getOrganization());
    add("project", req.getProject());
    add("root-directory", info && info.getRootDirectory());
    add("stack", req.getStack());
    add("pwd", programDir);
    if (req.getDryrun()) argv.push("--dry-run");
    add("parallel", req.getParallel());
    argv.push(entryPoint, ...req.getArgsList());
    const env = {
      ...process.env,
      PULUMI_CONFIG: configJson(req),
      PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(req.getConfigsecretkeysList()),
    };
    if (options.typescript !== false) env.PULUMI_NODEJS_TYPESCRIPT = "true";
    if (typeof options.tsconfig === "string") env.PULUMI_NODEJS_TSCONFIG_PATH = options.tsconfig;
    const nodeArgs = typeof options.nodeargs === "string" ? options.nodeargs.split(/\s+/).filter(Boolean) : [];
    const child = childProcess.spawn(process.execPath, [...nodeArgs, ...argv], {
      cwd: programDir,
      env,
      stdio: ["ignore", "inherit", "inherit"],
    });
    children.add(child);
    child.on("error", (err) => {
      children.delete(child);
      res.setError(`Problem executing program (could not run language executor): ${err.message}`);
      callback(null, res);
    });
    child.on("exit", (code, signal) => {
      children.delete(child);
      if (code === EXIT_AFTER_USER_MESSAGE) res.setBail(true);
      else if (code !== 0) res.setError(`Program exited with non-zero exit code: ${code ?? signal}`);
      callback(null, res);
    });
  },
};

const handlers = {};
for (const name of Object.keys(langRpc.LanguageRuntimeService)) {
  const key = name.charAt(0).toLowerCase() + name.slice(1);
  handlers[key] =
    service[key] ||
    ((call, callback) => (callback ? unimplemented(callback) : call.destroy({ code: grpc.status.UNIMPLEMENTED })));
}

const server = new grpc.Server();
server.addService(langRpc.LanguageRuntimeService, handlers);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`could not start language host RPC server: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${port}\n`);
});
const stop = () => {
  for (const child of children) child.kill("SIGINT");
  server.tryShutdown(() => process.exit(0));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
