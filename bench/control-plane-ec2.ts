/**
 * The EC2 part of the benchmark control plane (bench/control-plane.ts): its instances and DescribeInstances as the
 * EC2 Query API answers it, with AWS's filters, MaxResults (5 to 1000) and NextToken, and AWS's error codes for what
 * it refuses. Each instance's XML is what AWS returns for a plain Linux instance, so the SDK parses what it would
 * parse in production, not a trimmed answer.
 */

/** One instance the control plane knows. */
export interface PlaneInstance {
  id: string;
  account: string;
  region: string;
  reservationId: string;
  privateIp: string;
  tags: Record<string, string>;
  launchTime: string;
  /** The instance's `<item>` in a reservation as AWS answers it, built once. */
  xml: string;
  /** The same `<item>` with only the fields the fetcher reads (see {@link leanInstanceXml}). */
  leanXml: string;
}

/** Whether DescribeInstances answers with every field AWS returns or only those the fetcher reads. */
export type InstanceAnswers = "full" | "lean";

/** An answer of the control plane: status and body (XML or JSON by service). */
export interface PlaneAnswer {
  status: number;
  body: string;
}

/** The most instances one DescribeInstances page holds, as on AWS. */
export const MAX_PAGE = 1000;

/** Text escaped for an XML element. */
export const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** AWS's EC2 error answer. */
export function ec2Error(status: number, code: string, message: string): PlaneAnswer {
  return {
    status,
    body: `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${code}</Code><Message>${esc(message)}</Message></Error></Errors><RequestID>bench</RequestID></Response>`,
  };
}

type InstanceFields = Omit<PlaneInstance, "xml" | "leanXml">;
const dnsName = (i: InstanceFields) =>
  `ip-${i.privateIp.replace(/\./g, "-")}.${i.region === "us-east-1" ? "ec2.internal" : `${i.region}.compute.internal`}`;
const tagSet = (i: InstanceFields) =>
  Object.entries(i.tags)
    .map(([k, v]) => `<item><key>${esc(k)}</key><value>${esc(v)}</value></item>`)
    .join("");

/**
 * An instance's `<item>` with only what the fetcher reads (id, state, addresses, launch time, platform, tags): an
 * eighth of the full answer's size, to tell the cost of parsing AWS's full answers from the rest of a pass.
 */
export function leanInstanceXml(i: InstanceFields): string {
  return (
    `<item><instanceId>${i.id}</instanceId><instanceState><code>16</code><name>running</name></instanceState>` +
    `<privateDnsName>${dnsName(i)}</privateDnsName><launchTime>${i.launchTime}</launchTime>` +
    `<privateIpAddress>${i.privateIp}</privateIpAddress><tagSet>${tagSet(i)}</tagSet>` +
    `<platformDetails>Linux/UNIX</platformDetails></item>`
  );
}

/** The `<item>` of one instance in a DescribeInstances reservation, with the fields AWS returns. */
export function instanceXml(i: InstanceFields): string {
  const dns = dnsName(i);
  const eni = `eni-${i.id.slice(2)}`;
  const tags = tagSet(i);
  return (
    `<item><instanceId>${i.id}</instanceId><imageId>ami-0abcdef1234567890</imageId>` +
    `<instanceState><code>16</code><name>running</name></instanceState>` +
    `<privateDnsName>${dns}</privateDnsName><dnsName/><reason/><keyName>bench</keyName><amiLaunchIndex>0</amiLaunchIndex>` +
    `<productCodes/><instanceType>t3.micro</instanceType><launchTime>${i.launchTime}</launchTime>` +
    `<placement><availabilityZone>${i.region}a</availabilityZone><groupName/><tenancy>default</tenancy></placement>` +
    `<monitoring><state>disabled</state></monitoring><subnetId>subnet-0123456789abcdef0</subnetId>` +
    `<vpcId>vpc-0123456789abcdef0</vpcId><privateIpAddress>${i.privateIp}</privateIpAddress>` +
    `<sourceDestCheck>true</sourceDestCheck><groupSet><item><groupId>sg-0123456789abcdef0</groupId>` +
    `<groupName>default</groupName></item></groupSet><architecture>x86_64</architecture>` +
    `<rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/xvda</rootDeviceName><blockDeviceMapping><item>` +
    `<deviceName>/dev/xvda</deviceName><ebs><volumeId>vol-${i.id.slice(2)}</volumeId><status>attached</status>` +
    `<attachTime>${i.launchTime}</attachTime><deleteOnTermination>true</deleteOnTermination></ebs></item>` +
    `</blockDeviceMapping><virtualizationType>hvm</virtualizationType><clientToken/><tagSet>${tags}</tagSet>` +
    `<hypervisor>xen</hypervisor><networkInterfaceSet><item><networkInterfaceId>${eni}</networkInterfaceId>` +
    `<subnetId>subnet-0123456789abcdef0</subnetId><vpcId>vpc-0123456789abcdef0</vpcId><description/>` +
    `<ownerId>${i.account}</ownerId><status>in-use</status><macAddress>02:00:00:00:00:00</macAddress>` +
    `<privateIpAddress>${i.privateIp}</privateIpAddress><privateDnsName>${dns}</privateDnsName>` +
    `<sourceDestCheck>true</sourceDestCheck><groupSet><item><groupId>sg-0123456789abcdef0</groupId>` +
    `<groupName>default</groupName></item></groupSet><attachment><attachmentId>eni-attach-${i.id.slice(2)}</attachmentId>` +
    `<deviceIndex>0</deviceIndex><status>attached</status><attachTime>${i.launchTime}</attachTime>` +
    `<deleteOnTermination>true</deleteOnTermination><networkCardIndex>0</networkCardIndex></attachment>` +
    `<privateIpAddressesSet><item><privateIpAddress>${i.privateIp}</privateIpAddress><privateDnsName>${dns}</privateDnsName>` +
    `<primary>true</primary></item></privateIpAddressesSet><ipv6AddressesSet/><interfaceType>interface</interfaceType>` +
    `</item></networkInterfaceSet><ebsOptimized>false</ebsOptimized><enaSupport>true</enaSupport>` +
    `<cpuOptions><coreCount>1</coreCount><threadsPerCore>2</threadsPerCore></cpuOptions>` +
    `<capacityReservationSpecification><capacityReservationPreference>open</capacityReservationPreference>` +
    `</capacityReservationSpecification><hibernationOptions><configured>false</configured></hibernationOptions>` +
    `<metadataOptions><state>applied</state><httpTokens>required</httpTokens><httpPutResponseHopLimit>2</httpPutResponseHopLimit>` +
    `<httpEndpoint>enabled</httpEndpoint><httpProtocolIpv6>disabled</httpProtocolIpv6><instanceMetadataTags>disabled</instanceMetadataTags>` +
    `</metadataOptions><enclaveOptions><enabled>false</enabled></enclaveOptions><bootMode>uefi-preferred</bootMode>` +
    `<platformDetails>Linux/UNIX</platformDetails><usageOperation>RunInstances</usageOperation>` +
    `<usageOperationUpdateTime>${i.launchTime}</usageOperationUpdateTime><privateDnsNameOptions>` +
    `<hostnameType>ip-name</hostnameType><enableResourceNameDnsARecord>false</enableResourceNameDnsARecord>` +
    `<enableResourceNameDnsAAAARecord>false</enableResourceNameDnsAAAARecord></privateDnsNameOptions>` +
    `<maintenanceOptions><autoRecovery>default</autoRecovery></maintenanceOptions>` +
    `<currentInstanceBootMode>legacy-bios</currentInstanceBootMode></item>`
  );
}

/** A filter value as AWS reads it: `*` any run of characters, `?` any one. */
function globTest(pattern: string): (s: string) => boolean {
  if (!/[*?]/.test(pattern)) return (s) => s === pattern;
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")}$`,
  );
  return (s) => re.test(s);
}

type Filter = (i: PlaneInstance) => boolean;

/** The filters of a DescribeInstances form (Filter.N.Name, Filter.N.Value.M), or the name of one it does not know. */
function parseFilters(form: URLSearchParams): Filter[] | string {
  const byIndex = new Map<string, { name?: string; values: string[] }>();
  for (const [k, v] of form) {
    const m = /^Filter\.(\d+)\.(Name|Value\.\d+)$/.exec(k);
    if (!m) continue;
    const f = byIndex.get(m[1]) ?? { values: [] };
    if (m[2] === "Name") f.name = v;
    else f.values.push(v);
    byIndex.set(m[1], f);
  }
  const filters: Filter[] = [];
  for (const { name = "", values } of byIndex.values()) {
    const tests = values.map(globTest);
    const any = (s: string | undefined) => s !== undefined && tests.some((t) => t(s));
    if (name === "instance-state-name") filters.push(() => any("running"));
    else if (name === "instance-id") filters.push((i) => any(i.id));
    else if (name === "tag-key") filters.push((i) => Object.keys(i.tags).some(any));
    else if (name.startsWith("tag:")) filters.push((i) => any(i.tags[name.slice(4)]));
    else if (name === "private-ip-address") filters.push((i) => any(i.privateIp));
    else return name;
  }
  return filters;
}

/** The values of an `instance-id` filter when none has a wildcard, else undefined. */
function exactIdFilter(form: URLSearchParams): string[] | undefined {
  const name = [...form.entries()].find(([k, v]) => /^Filter\.\d+\.Name$/.test(k) && v === "instance-id")?.[0];
  if (!name) return undefined;
  const prefix = name.replace(/Name$/, "Value.");
  const values = [...form.entries()].filter(([k]) => k.startsWith(prefix)).map(([, v]) => v);
  return values.some((v) => /[*?]/.test(v)) ? undefined : values;
}

/** Whether a DescribeInstances form is filtered or paginated: AWS counts those against the larger bucket. */
export function isFilteredOrPaged(form: URLSearchParams): boolean {
  return [...form.keys()].some((k) => k.startsWith("Filter.")) || form.has("MaxResults");
}

/** DescribeInstances over one account and region's instances (`scope`, in launch order) and all instances by id. */
export function describeInstances(
  form: URLSearchParams,
  scope: readonly PlaneInstance[],
  byId: ReadonlyMap<string, PlaneInstance>,
  account: string,
  region: string,
  answers: InstanceAnswers = "full",
): PlaneAnswer {
  const ids = [...form.entries()].filter(([k]) => /^InstanceId\.\d+$/.test(k)).map(([, v]) => v);
  const maxRaw = form.get("MaxResults");
  if (ids.length && maxRaw !== null)
    return ec2Error(400, "InvalidParameterCombination", "The parameter instancesSet cannot be used with maxResults");
  const max = maxRaw === null ? Infinity : Number(maxRaw);
  if (maxRaw !== null && !(Number.isInteger(max) && max >= 5 && max <= MAX_PAGE))
    return ec2Error(400, "InvalidParameterValue", `Value ( ${maxRaw} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000`); // prettier-ignore
  if (ids.length > MAX_PAGE) return ec2Error(400, "InvalidParameterValue", "at most 1000 instance ids per call");
  const filters = parseFilters(form);
  if (typeof filters === "string") return ec2Error(400, "InvalidParameterValue", `The filter '${filters}' is invalid`);
  let pool: readonly PlaneInstance[] = scope;
  if (ids.length) {
    const missing = ids.filter((id) => {
      const i = byId.get(id);
      return !i || i.account !== account || i.region !== region;
    });
    if (missing.length)
      return ec2Error(400, "InvalidInstanceID.NotFound", `The instance IDs '${missing.join(", ")}' do not exist`);
    pool = ids.map((id) => byId.get(id)!);
  } else {
    // An instance-id filter without wildcards is an index lookup, as at AWS, not a scan of the region's instances:
    // scanning 10,000s of instances for 200 values a call would charge the runtime's thread for the bench's work.
    const exact = exactIdFilter(form);
    if (exact) pool = [...new Set(exact)].map((id) => byId.get(id)!).filter((i) => i && i.account === account && i.region === region); // prettier-ignore
  }
  const matching = filters.length ? pool.filter((i) => filters.every((f) => f(i))) : pool;
  const token = form.get("NextToken");
  const start = token ? Number(Buffer.from(token, "base64url").toString()) : 0;
  if (!Number.isInteger(start) || start < 0 || start > matching.length)
    return ec2Error(400, "InvalidParameterValue", "The NextToken is invalid");
  const page = matching.slice(start, start + max);
  const next = start + page.length < matching.length ? Buffer.from(String(start + page.length)).toString("base64url") : ""; // prettier-ignore
  return { status: 200, body: describeXml(page, account, next, answers) };
}

/** Reservations of consecutive instances launched together, as AWS groups them. */
function describeXml(page: readonly PlaneInstance[], account: string, next: string, answers: InstanceAnswers): string {
  const parts = ['<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>bench</requestId><reservationSet>']; // prettier-ignore
  for (let k = 0; k < page.length;) {
    const r = page[k].reservationId;
    parts.push(`<item><reservationId>${r}</reservationId><ownerId>${account}</ownerId><groupSet/><instancesSet>`);
    for (; k < page.length && page[k].reservationId === r; k++)
      parts.push(answers === "full" ? page[k].xml : page[k].leanXml);
    parts.push("</instancesSet></item>");
  }
  parts.push(`</reservationSet>${next ? `<nextToken>${next}</nextToken>` : ""}</DescribeInstancesResponse>`);
  return parts.join("");
}
