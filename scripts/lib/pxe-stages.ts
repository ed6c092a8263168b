/**
 * Stage timings of a PXE-booted machine in the issue 19 end-to-end test (test/integration/pxe-cluster.test.ts,
 * docs/benchmarks.md section 14): what the gateway agent logged for the machine (its dnsmasq's DHCP and
 * TFTP lines, its boot server's `boot file served` lines) and what the machine printed on its serial
 * console. Pure: the test feeds it the logs it reads.
 */

/** A named moment, epoch ms. */
export type Stage = [name: string, at: number];

/** One gateway agent log line (pino JSON). */
export type LogLine = Record<string, unknown>;

/**
 * The stages the gateway agent logged for the machine with `mac`: name → epoch ms. A served file's
 * line is logged at its end; its start is that minus its `ms`. DHCP acks are numbered (a machine
 * that reboots asks again); the other stages keep their first time.
 */
export function gatewayStages(lines: readonly LogLine[], mac: string): Stage[] {
  const out: Stage[] = [];
  let ip: string | undefined;
  let acks = 0;
  for (const l of lines) {
    const t = Number(l.time);
    const text = typeof l.dnsmasq === 'string' ? l.dnsmasq : '';
    const ack = /DHCPACK\(\S+\) (\S+) (\S+)/.exec(text);
    if (ack && ack[2] === mac) {
      ip = ack[1];
      out.push([`DHCPACK #${++acks} (dnsmasq)`, t]);
    }
    const efi = ip && new RegExp(`sent \\S+/((?:snponly|ipxe)\\.efi) to ${ip.replace(/\./g, '\\.')}$`).exec(text);
    if (efi) out.push([`TFTP ${efi[1]} sent (dnsmasq)`, t]);
    if (!ip || l.msg !== 'boot file served' || l.remote !== ip) continue;
    const file = String(l.path).replace(/^.*\//, '');
    const ms = Number(l.ms);
    if (file === 'boot.ipxe') out.push(['iPXE stub served (boot-http)', t]);
    else if (/^(vmlinuz|initrd\.img|filesystem\.squashfs|local-disk\.efi)$/.test(file)) {
      out.push([`${file} requested (boot-http)`, t - ms]);
      out.push([`${file} done, ${(Number(l.bytes) / 2 ** 20).toFixed(0)} MiB in ${ms} ms (boot-http)`, t]);
    } else if (file === 'mammatus-archive-keyring.gpg') out.push(['apt key fetched by bootcmd (boot-http)', t]);
    else if (file === 'InRelease') out.push(['apt update: InRelease (boot-http)', t]);
    else if (file.endsWith('.deb')) out.push(['mammatus-agent .deb fetched (boot-http)', t]);
  }
  return out;
}

/** How many boot files of each name the gateway served to the machine with `mac` (by its leased address). */
export function servedFiles(lines: readonly LogLine[], mac: string): Map<string, number> {
  const counts = new Map<string, number>();
  let ip: string | undefined;
  for (const l of lines) {
    const ack = /DHCPACK\(\S+\) (\S+) (\S+)/.exec(typeof l.dnsmasq === 'string' ? l.dnsmasq : '');
    if (ack && ack[2] === mac) ip = ack[1];
    if (!ip || l.msg !== 'boot file served' || l.remote !== ip) continue;
    const file = String(l.path).replace(/^.*\//, '');
    counts.set(file, (counts.get(file) ?? 0) + 1);
  }
  return counts;
}

/** How many times systemd said it started `unit` on the console. */
export function unitStarts(serial: string, unit: string): number {
  return serial.match(new RegExp(`Started \\S*${unit}\\.service`, 'g'))?.length ?? 0;
}

/**
 * The stages the console shows (the machine's own view): present or not; the caller stamps each the
 * first time it appears. Counts let a rebooted machine's second boot show as stages of their own.
 * systemd stops printing unit status once the boot is done (the login prompt), so a unit that
 * becomes ready later — the agent on an installed host's disk boot, whose journal says it started
 * 20 s after the prompt — never shows here: ask the agent itself (`mammatus status`).
 */
export function serialStages(serial: string): string[] {
  const out: string[] = [];
  const count = (re: RegExp) => serial.match(new RegExp(re.source, 'g'))?.length ?? 0;
  if (/iPXE initialising|iPXE \d/.test(serial)) out.push('iPXE on the console');
  if (/Linux version/.test(serial)) out.push('kernel started (serial)');
  if (/Welcome to .*Debian|systemd\[1\]/.test(serial)) out.push('systemd started (serial)');
  if (/Cloud-init v\. \S+ running 'init-local'/.test(serial)) out.push('cloud-init init-local (serial)');
  if (/Cloud-init v\. \S+ running 'init'/.test(serial)) out.push('cloud-init init (serial)');
  if (/Cloud-init v\. \S+ running 'modules:final'/.test(serial)) out.push('cloud-init final: apt, join (serial)');
  if (unitStarts(serial, 'mammatus-agent') >= 1) out.push('mammatus-agent installed, started (serial)');
  if (unitStarts(serial, 'serf') >= 2) out.push('serf restarted by the join (serial)');
  if (unitStarts(serial, 'mammatus-agent') >= 2) out.push('mammatus-agent restarted by the join (serial)');
  if (/mammatus-install-to-disk: .* copy the running system to \S+ \.\.\./.test(serial)) out.push('install: copy started (serial)');
  if (/mammatus-install-to-disk: .* installed to \/dev\/\S+/.test(serial)) out.push('install: done (serial)');
  if (/mammatus-install-to-disk: .* rebooting into the installed system/.test(serial)) out.push('install: rebooting (serial)');
  if (count(/Linux version/) >= 2) out.push('kernel started from disk (serial)');
  if (unitStarts(serial, 'serf') >= 3) out.push('serf started from disk (serial)');
  return out;
}
