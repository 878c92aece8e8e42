/**
 * A reader of DescribeInstances answers that takes only the fields this project uses, for the EC2 clients of the
 * join check, the discovery fetcher and the stale check. AWS describes an instance in about 3.7 KB of XML; the SDK
 * reads all of it into objects at about 140 µs an instance (bench/discovery, "reading one page"), a third of a
 * join's CPU and nearly all of a discovery pass's. This reader walks the same bytes and keeps a dozen fields.
 *
 * It is exact or it steps aside: it reads only the shape AWS writes (elements and text, the five XML entities and
 * character references, attributes on the root). Anything else (a comment, CDATA, a processing instruction inside,
 * text where elements belong, a field twice, an element inside a field, a date that is not RFC 3339, tags that do
 * not nest) makes it return `undefined`, and the SDK's own deserializer reads the answer as it always did. Errors
 * (status ≥ 300) always go to the SDK, so throttling and access errors keep their types and codes. The one way it
 * is not the SDK: a damaged value in a field it does not read (a malformed date the SDK would refuse the whole
 * answer over, say) does not stop it reading the fields it does.
 *
 * A field is taken only at its exact path, so a `privateIpAddress` of a network interface is never read as the
 * instance's, and a tag's text can never open an element: XML text cannot hold `<`.
 */
import type { DescribeInstancesCommandOutput, EC2Client, Instance, Reservation } from "@aws-sdk/client-ec2";

/** What this reader gives: the SDK's output, with only these fields. */
export type LeanDescribeInstances = Pick<DescribeInstancesCommandOutput, "Reservations" | "NextToken">;

// Where the reader is: one state per open element. A Field holds text only.
enum S {
  Skip,
  Root,
  ReservationSet,
  Reservation,
  InstancesSet,
  Instance,
  InstanceState,
  Profile,
  TagSet,
  Tag,
  Field,
}

/** The text fields of an instance, by XML name, and the SDK's names for them. */
const INSTANCE_FIELDS: Record<string, keyof Instance> = {
  instanceId: "InstanceId",
  privateDnsName: "PrivateDnsName",
  dnsName: "PublicDnsName",
  privateIpAddress: "PrivateIpAddress",
  ipAddress: "PublicIpAddress",
  platform: "Platform",
  platformDetails: "PlatformDetails",
  launchTime: "LaunchTime",
};

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const ENTITY = /&(?:(lt|gt|amp|quot|apos)|#(\d{1,7})|#x([0-9a-fA-F]{1,6}));/g;
const NAMED: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

/** Thrown inside the reader when the answer is not in the shape it reads; the caller hands it to the SDK. */
class NotLean extends Error {}
const notLean = (why: string): never => {
  throw new NotLean(why);
};

function decodeText(raw: string): string {
  if (raw.indexOf("&") < 0) return raw;
  if (raw.replace(ENTITY, "").indexOf("&") >= 0) notLean("an unknown entity");
  return raw.replace(ENTITY, (_m, named: string, dec: string, hex: string) => {
    if (named) return NAMED[named];
    const cp = dec ? Number(dec) : parseInt(hex, 16);
    // Beyond the Basic Multilingual Plane the SDK's reader differs (it keeps 16 bits), so it reads those itself.
    if (cp > 0xffff || (cp >= 0xd800 && cp <= 0xdfff) || cp === 0) notLean("a character reference the SDK reads");
    return String.fromCodePoint(cp);
  });
}

/** Characters of the element names AWS writes (and XML's other name characters in ASCII). */
const isNameChar = (c: number) =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x2d || c === 0x2e || c === 0x3a; // prettier-ignore
/** Whitespace between two elements, which the SDK skips only when it holds a line end; anything else steps aside. */
function betweenElements(s: string, from: number, to: number): void {
  let lineEnd = false;
  for (let k = from; k < to; k++) {
    const c = s.charCodeAt(k);
    if (!isSpace(c)) notLean("text outside a field");
    if (c === 0x0a || c === 0x0d) lineEnd = true;
  }
  if (!lineEnd) notLean("spaces between elements");
}

/** A field's text as the SDK gives it: entities decoded, whitespace with a line end read as empty. */
function fieldText(raw: string): string {
  // The SDK turns every CR (and CRLF) into LF before it reads; such rare text is left to it.
  if (raw.indexOf("\r") >= 0) notLean("a carriage return in a field");
  if (raw.indexOf("\n") >= 0 && raw.trim() === "") return "";
  return decodeText(raw);
}

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * Reads a DescribeInstances answer's reservations (OwnerId, and each instance's id, state, instance profile ARN,
 * names, addresses, platform, launch time and tags) and NextToken; `undefined` when the answer is in any other
 * shape, for the SDK to read.
 */
export function readDescribeInstances(xml: string): LeanDescribeInstances | undefined {
  try {
    return read(xml);
  } catch (err) {
    if (err instanceof NotLean) return undefined;
    throw err;
  }
}

function read(s: string): LeanDescribeInstances {
  const n = s.length;
  let i = 0;
  // An XML declaration, then the root element.
  while (i < n && isSpace(s.charCodeAt(i))) i++;
  if (s.startsWith("<?xml", i)) {
    const end = s.indexOf("?>", i);
    if (end < 0) notLean("an unclosed XML declaration");
    i = end + 2;
  }
  const reservations: Reservation[] = [];
  let nextToken: string | undefined;
  let reservation: Reservation | undefined;
  let instance: Instance | undefined;
  let tag: { Key?: string; Value?: string } | undefined;
  const names: string[] = [];
  const states: S[] = [];
  let sawRoot = false;

  /** The end of the tag opened at `lt` (the index of its `>`), skipping quoted attribute values. */
  const tagEnd = (lt: number): number => {
    for (let k = lt + 1; k < n; k++) {
      const c = s.charCodeAt(k);
      if (c === 0x3e) return k; // >
      if (c === 0x22 || c === 0x27) {
        const close = s.indexOf(c === 0x22 ? '"' : "'", k + 1);
        if (close < 0) break;
        k = close;
      } else if (c === 0x3c) break; // <
    }
    return notLean("an unclosed tag");
  };

  /** The state of a child element `name` of an element in state `parent`. */
  const child = (parent: S, name: string): S => {
    switch (parent) {
      case S.Root:
        if (name === "reservationSet") return S.ReservationSet;
        if (name === "nextToken") return S.Field;
        return S.Skip;
      case S.ReservationSet:
        if (name !== "item") notLean(`<${name}> in reservationSet`);
        reservation = { Instances: [] };
        reservations.push(reservation);
        return S.Reservation;
      case S.Reservation:
        if (name === "instancesSet") return S.InstancesSet;
        return name === "ownerId" ? S.Field : S.Skip;
      case S.InstancesSet:
        if (name !== "item") notLean(`<${name}> in instancesSet`);
        instance = {};
        reservation!.Instances!.push(instance);
        return S.Instance;
      case S.Instance:
        if (name === "instanceState") return S.InstanceState;
        if (name === "iamInstanceProfile") return S.Profile;
        if (name === "tagSet") return S.TagSet;
        return Object.hasOwn(INSTANCE_FIELDS, name) ? S.Field : S.Skip;
      case S.InstanceState:
        return name === "name" ? S.Field : S.Skip;
      case S.Profile:
        return name === "arn" ? S.Field : S.Skip;
      case S.TagSet:
        if (name !== "item") notLean(`<${name}> in tagSet`);
        tag = {};
        (instance!.Tags ??= []).push(tag);
        return S.Tag;
      case S.Tag:
        return name === "key" || name === "value" ? S.Field : S.Skip;
      default:
        return notLean(`<${name}> inside a field`);
    }
  };

  /** Stores a field's text by its element and its parent's state; a field given twice is not read here. */
  const store = (parent: S, name: string, text: string) => {
    const once = <T extends object>(o: T, k: keyof T, v: unknown) => {
      if (o[k] !== undefined) notLean(`${name} twice`);
      (o as Record<keyof T, unknown>)[k] = v;
    };
    switch (parent) {
      case S.Root:
        if (nextToken !== undefined) notLean("nextToken twice");
        nextToken = text;
        return;
      case S.Reservation:
        return once(reservation!, "OwnerId", text);
      case S.Instance: {
        const key = INSTANCE_FIELDS[name];
        if (key === "LaunchTime") {
          if (!RFC3339.test(text) || Number.isNaN(Date.parse(text))) notLean(`launchTime ${text}`);
          return once(instance!, key, new Date(text));
        }
        return once(instance!, key, text);
      }
      case S.InstanceState:
        return once((instance!.State ??= {}), "Name", text);
      case S.Profile:
        return once((instance!.IamInstanceProfile ??= {}), "Arn", text);
      case S.Tag:
        return once(tag!, name === "key" ? "Key" : "Value", text);
    }
  };

  while (i < n) {
    const lt = s.indexOf("<", i);
    if (lt < 0) {
      for (let k = i; k < n; k++) if (!isSpace(s.charCodeAt(k))) notLean("text after the root");
      break;
    }
    const top = states.length ? states[states.length - 1] : undefined;
    // Text between elements: only a field holds any. The SDK drops whitespace there only when it holds a line end.
    if (lt > i && top !== S.Field && top !== S.Skip) betweenElements(s, i, lt);
    const c1 = s.charCodeAt(lt + 1);
    if (c1 === 0x2f) {
      // </name>
      const gt = s.indexOf(">", lt);
      if (gt < 0) notLean("an unclosed end tag");
      const name = s.slice(lt + 2, gt).trimEnd();
      if (!names.length || names[names.length - 1] !== name) notLean(`</${name}> closes no open element`);
      names.pop();
      const state = states.pop()!;
      if (state === S.Field) {
        const parent = states[states.length - 1];
        if (parent !== S.Skip) store(parent, name, fieldText(s.slice(i, lt)));
      } else if (state === S.InstancesSet || state === S.Instance) {
        if (state === S.Instance) instance = undefined;
      } else if (state === S.Tag) tag = undefined;
      i = gt + 1;
      continue;
    }
    if (c1 === 0x21 || c1 === 0x3f) notLean("a comment, CDATA or processing instruction");
    if (top === S.Field) notLean("an element inside a field");
    // The element's name; then `>` or `/>`, or (on the root only) attributes.
    let k = lt + 1;
    for (let c = s.charCodeAt(k); isNameChar(c); c = s.charCodeAt(++k));
    const name = s.slice(lt + 1, k);
    if (!name) notLean("an element without a name");
    let gt: number;
    let selfClosing = false;
    if (s.charCodeAt(k) === 0x3e) gt = k;
    else if (s.charCodeAt(k) === 0x2f && s.charCodeAt(k + 1) === 0x3e) [gt, selfClosing] = [k + 1, true];
    else if (top === undefined && isSpace(s.charCodeAt(k))) {
      gt = tagEnd(lt); // the root's xmlns
      selfClosing = s.charCodeAt(gt - 1) === 0x2f;
    } else gt = notLean(`attributes on <${name}>`);
    let state: S;
    if (top === undefined) {
      if (sawRoot || name !== "DescribeInstancesResponse") notLean(`a root <${name}>`);
      sawRoot = true;
      state = S.Root;
    } else state = top === S.Skip ? S.Skip : child(top, name);
    i = gt + 1;
    if (selfClosing) {
      // <name/>: an empty element. An empty field is an empty string, as the SDK reads it.
      if (state === S.Field && top !== S.Skip) store(top!, name, "");
      if (state === S.Instance) instance = undefined;
      if (state === S.Tag) tag = undefined;
      continue;
    }
    names.push(name);
    states.push(state);
  }
  if (!sawRoot || names.length) notLean("an unclosed root");
  return { Reservations: reservations, ...(nextToken !== undefined && { NextToken: nextToken }) };
}

type Deserialize = (schema: { name?: string }, context: object, response: HttpAnswer) => Promise<unknown>;
type HttpAnswer = { statusCode: number; headers: Record<string, string>; body: unknown };

async function bodyBytes(body: unknown): Promise<Uint8Array> {
  if (body instanceof Uint8Array) return body;
  if (typeof body === "string") return Buffer.from(body);
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer | string>) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks);
}

/**
 * Makes `client` read its DescribeInstances answers with {@link readDescribeInstances}, and every other answer (and
 * any DescribeInstances answer that reader steps aside from) with the SDK's own deserializer, as before.
 */
export function leanDescribeInstances<C extends EC2Client>(client: C): C {
  const protocol = client.config.protocol as unknown as
    | { deserializeResponse?: Deserialize; deserializeMetadata?(r: HttpAnswer): DescribeInstancesCommandOutput["$metadata"] } // prettier-ignore
    | undefined;
  // An SDK without this hook keeps its own deserializer for everything: slower, never wrong.
  if (typeof protocol?.deserializeResponse !== "function" || typeof protocol.deserializeMetadata !== "function")
    return client;
  const sdk = protocol.deserializeResponse.bind(protocol);
  protocol.deserializeResponse = async (schema, context, response) => {
    if (response.statusCode >= 300 || !/(^|#)DescribeInstances$/.test(schema?.name ?? "")) return sdk(schema, context, response); // prettier-ignore
    const bytes = await bodyBytes(response.body);
    const lean = readDescribeInstances(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
    if (!lean) return sdk(schema, context, { ...response, body: bytes });
    return { ...lean, $metadata: protocol.deserializeMetadata!(response) };
  };
  return client;
}
