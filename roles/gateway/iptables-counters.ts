/**
 * Per-rule packet and byte counters of the gateway's forwarding rules, from `iptables-save -c`.
 * The gateway owns the whole `filter` and `nat` tables (render-iptables.ts); the rules that carry
 * forwarded traffic are those of filter `FORWARD` (and its policy: what was dropped) and nat
 * `PREROUTING` and `POSTROUTING` (port forwards, the metadata redirect, the masquerade).
 *
 * The rendered rules carry no comments (adding some would change every golden and the rules in
 * force), so each rule is named from what it matches, with the ports as `lan`/`wan`: stable while
 * the rule exists, whatever else is added before it, and readable in a dashboard:
 * `forward:lan>wan:accept`, `forward:wan>lan:10.88.0.10:tcp/80:dnat:accept`,
 * `prerouting:wan:tcp/8080:dnat`, `postrouting:wan:10.88.0.0/24:masquerade`, `forward:policy:drop`.
 */

/** Which chains of which tables are counted. */
const COUNTED: Readonly<Record<string, readonly string[]>> = {
  filter: ['FORWARD'],
  nat: ['PREROUTING', 'POSTROUTING'],
};

/** One counted rule (or chain policy). */
export interface RuleCounter {
  /** A short stable name (see the module comment). */
  readonly rule: string;
  readonly packets: number;
  readonly bytes: number;
}

/** The gateway's ports, to name them `lan` and `wan` in rule names. */
export interface PortNames {
  readonly lan: string;
  readonly wan: string;
}

/** Splits a rule into words; a double-quoted word (a comment) is one word, without its quotes. */
function words(rule: string): string[] {
  const out: string[] = [];
  for (const m of rule.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
  return out;
}

/** The value following `flag` in `w` (the first one), or undefined. */
function option(w: readonly string[], flag: string): string | undefined {
  const i = w.indexOf(flag);
  return i >= 0 && i + 1 < w.length ? w[i + 1] : undefined;
}

/** The name of one rule of `chain` (its words after the chain name). */
export function ruleName(chain: string, w: readonly string[], ports: PortNames): string {
  const port = (name: string | undefined) => (name === ports.lan ? 'lan' : name === ports.wan ? 'wan' : name);
  const comment = option(w, '--comment');
  if (comment) return `${chain.toLowerCase()}:${comment}`;
  const into = port(option(w, '-i'));
  const out = port(option(w, '-o'));
  const proto = option(w, '-p');
  const dport = option(w, '--dport');
  const parts = [
    into && out ? `${into}>${out}` : (into ?? out),
    option(w, '-s'),
    option(w, '-d')?.replace(/\/32$/, ''),
    proto ? (dport ? `${proto}/${dport}` : proto) : undefined,
    option(w, '--ctstate')?.toLowerCase(),
    option(w, '-j')?.toLowerCase(),
  ];
  return [chain.toLowerCase(), ...parts.filter((p): p is string => Boolean(p))].join(':');
}

/**
 * The counters of the counted chains in `iptables-save -c` output, in file order. Rules whose
 * names coincide get `#2`, `#3`… in order. Lines that are not counted rules are skipped.
 */
export function parseRuleCounters(save: string, ports: PortNames): RuleCounter[] {
  const out: RuleCounter[] = [];
  const seen = new Map<string, number>();
  const add = (rule: string, packets: number, bytes: number) => {
    const n = (seen.get(rule) ?? 0) + 1;
    seen.set(rule, n);
    out.push({ rule: n === 1 ? rule : `${rule}#${n}`, packets, bytes });
  };
  let table = '';
  for (const raw of save.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      table = line.slice(1);
      continue;
    }
    const chains = COUNTED[table];
    if (!chains) continue;
    // A DROP policy counts what no rule let through (`:FORWARD DROP [packets:bytes]`); the nat
    // chains' ACCEPT policies count every other new connection, which says nothing of forwards.
    const policy = /^:(\S+)\s+DROP\s+\[(\d+):(\d+)\]$/.exec(line);
    if (policy) {
      if (chains.includes(policy[1])) add(`${policy[1].toLowerCase()}:policy:drop`, Number(policy[2]), Number(policy[3]));
      continue;
    }
    const rule = /^\[(\d+):(\d+)\]\s+-A\s+(\S+)\s*(.*)$/.exec(line);
    if (!rule || !chains.includes(rule[3])) continue;
    add(ruleName(rule[3], words(rule[4]), ports), Number(rule[1]), Number(rule[2]));
  }
  return out;
}
