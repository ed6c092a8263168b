/**
 * SSHSIG both ways with the real `ssh-keygen`: signatures it makes verify here, ours verify with
 * `ssh-keygen -Y verify`; tampered, foreign, wrong-namespace and non-operator signatures are refused.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OperatorKeyError, parseOperators, verifyOperatorSig } from '../../core/operators.js';
import { agentSigners, keySigner, parseSshKey, signSshSig, SshSigError, verifySshSig } from '../../core/sshsig.js';
import { ENVELOPE_OVERHEAD, openEvent, sealEvent, SeenNonces, SIG_NAMESPACE, signedMessage } from '../../core/signed-event.js';

const hasKeygen = spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' }).error === undefined;
if (!hasKeygen) console.warn('SSHSIG interop tests skipped: ssh-keygen (openssh-client) is missing');
const NS = 'mammatus';
const MESSAGE = Buffer.from('mammatus.volume.create\n{"name":"data"}\n1800000000\nnonce-1');

describe.skipIf(!hasKeygen)('SSHSIG with the real ssh-keygen', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-sshsig-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const keygen = (name: string, type: string, comment: string) => {
    const file = path.join(dir, name);
    execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-C', comment, '-f', file]);
    return { file, pub: readFileSync(`${file}.pub`, 'utf8').trim() };
  };
  const alice = keygen('alice', 'ed25519', 'alice@laptop');
  const bob = keygen('bob', 'rsa', 'bob@desk');
  const mallory = keygen('mallory', 'ed25519', 'mallory@elsewhere');
  const msgFile = path.join(dir, 'message');
  writeFileSync(msgFile, MESSAGE);
  const operators = parseOperators([`# the cluster's operators`, alice.pub, '', bob.pub]);

  /** `ssh-keygen -Y sign` of the message by `key`: its armoured signature. */
  const keygenSign = (key: string, ns = NS) => {
    execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-f', key, '-n', ns, msgFile], { stdio: 'pipe' });
    const sig = readFileSync(`${msgFile}.sig`, 'utf8');
    rmSync(`${msgFile}.sig`);
    return sig;
  };
  /** `ssh-keygen -Y verify` of `sig` as `principal` against the operators as allowed signers. */
  const keygenVerify = (sig: string, principal: string) => {
    const allowed = path.join(dir, 'allowed_signers');
    writeFileSync(
      allowed,
      [alice, bob].map((k) => `${k.pub.split(' ').pop()} ${k.pub.split(' ').slice(0, 2).join(' ')}`).join('\n') + '\n',
    );
    const sigFile = path.join(dir, 'check.sig');
    writeFileSync(sigFile, sig);
    return spawnSync('ssh-keygen', ['-Y', 'verify', '-f', allowed, '-I', principal, '-n', NS, '-s', sigFile], { input: MESSAGE });
  };

  it('reads the operators with their comments as names', () => {
    expect(operators.map((o) => [o.name, o.type])).toEqual([
      ['alice@laptop', 'ssh-ed25519'],
      ['bob@desk', 'ssh-rsa'],
    ]);
    expect(() => parseOperators(['ssh-ed25519 AAAAnotbase64'])).toThrow(OperatorKeyError);
    expect(() => parseOperators([alice.pub, 'garbage'])).toThrow(/trust.operators line 2/);
  });

  it.each([
    ['ed25519', () => alice],
    ['RSA', () => bob],
  ])('accepts what ssh-keygen -Y sign made with an %s key, naming the operator', (_type, who) => {
    const sig = keygenSign(who().file);
    expect(verifyOperatorSig(operators, sig, NS, MESSAGE).name).toBe(who() === alice ? 'alice@laptop' : 'bob@desk');
  });

  it.each([
    ['ed25519', () => alice, 'alice@laptop'],
    ['RSA', () => bob, 'bob@desk'],
  ])('signs with an %s key so that ssh-keygen -Y verify accepts it', async (_type, who, principal) => {
    const sig = await signSshSig(keySigner(parseSshKey(readFileSync(who().file))), NS, MESSAGE);
    const r = keygenVerify(sig, principal);
    expect(r.status, r.stderr.toString()).toBe(0);
    expect(verifyOperatorSig(operators, sig, NS, MESSAGE).name).toBe(principal);
  });

  it('refuses a tampered message, another namespace, a key that is no operator, and garbage', () => {
    const sig = keygenSign(alice.file);
    const refused = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(SshSigError);
        return (err as Error).message;
      }
      return 'accepted';
    };
    expect(refused(() => verifyOperatorSig(operators, sig, NS, Buffer.from('something else')))).toBe('bad signature');
    expect(refused(() => verifyOperatorSig(operators, keygenSign(alice.file, 'git'), NS, MESSAGE))).toMatch(/namespace "git"/);
    expect(refused(() => verifyOperatorSig(operators, keygenSign(mallory.file), NS, MESSAGE))).toMatch(/not an operator key/);
    expect(refused(() => verifySshSig('garbage', NS, MESSAGE))).toMatch(/not an armoured/);
    // A flipped byte inside the armour.
    const lines = sig.split('\n');
    lines[3] = (lines[3][0] === 'A' ? 'B' : 'A') + lines[3].slice(1);
    expect(refused(() => verifySshSig(lines.join('\n'), NS, MESSAGE))).not.toBe('accepted');
  });
});

describe.skipIf(!hasKeygen)('operator-signed Serf events', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-sigev-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const keygen = (name: string, type: string) => {
    const file = path.join(dir, name);
    execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-C', `${name}@test`, '-f', file]);
    return { key: keySigner(parseSshKey(readFileSync(file))), file, pub: readFileSync(`${file}.pub`, 'utf8').trim() };
  };
  const alice = keygen('alice', 'ed25519');
  const rsa = keygen('bob', 'rsa');
  const operators = parseOperators([alice.pub]);
  const NOW = 1_800_000_000_000;
  const payload = Buffer.from('{"volume":"data","size":"10G"}');

  it("fits Serf's 512 bytes with an ed25519 key, and says so for RSA", async () => {
    const env = await sealEvent(alice.key, 'mammatus.volume.create', payload, NOW);
    expect(env.length - payload.length).toBe(ENVELOPE_OVERHEAD);
    await expect(sealEvent(rsa.key, 'mammatus.volume.create', payload, NOW)).rejects.toThrow(/RSA signatures do not fit/);
    await expect(sealEvent(alice.key, 'mammatus.volume.create', Buffer.alloc(300), NOW)).rejects.toThrow(/over Serf's 512/);
  });

  it('opens its own envelope once; refuses unsigned, tampered, stale and replayed ones', async () => {
    const env = await sealEvent(alice.key, 'mammatus.volume.create', payload, NOW);
    const seen = new SeenNonces();
    const opened = openEvent(operators, 'mammatus.volume.create', env, NOW + 1000, seen);
    expect([opened.operator.name, opened.payload.toString()]).toEqual(['alice@test', payload.toString()]);
    const why = (f: () => unknown) => {
      try {
        f();
        return 'accepted';
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(why(() => openEvent(operators, 'mammatus.volume.create', env, NOW + 2000, seen))).toBe('replayed signature');
    expect(why(() => openEvent(operators, 'mammatus.volume.create', payload, NOW, new SeenNonces()))).toMatch(/unsigned/);
    expect(why(() => openEvent(operators, 'mammatus.volume.delete', env, NOW, new SeenNonces()))).toBe('bad signature');
    const tampered = Buffer.concat([env.subarray(0, env.length - 2), Buffer.from('0}')]);
    expect(why(() => openEvent(operators, 'mammatus.volume.create', tampered, NOW, new SeenNonces()))).toBe('bad signature');
    expect(why(() => openEvent(operators, 'mammatus.volume.create', env, NOW + 301_000, new SeenNonces()))).toMatch(/stale/);
  });

  it('accepts an envelope an operator made by hand with ssh-keygen -Y sign', () => {
    const [time, nonce] = [NOW / 1000, 'handmade-nonce-1'];
    const msgFile = path.join(dir, 'by-hand');
    writeFileSync(msgFile, signedMessage('mammatus.volume.create', time, nonce, payload));
    execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-f', alice.file, '-n', SIG_NAMESPACE, msgFile], { stdio: 'pipe' });
    const blob = readFileSync(`${msgFile}.sig`, 'utf8')
      .replace(/-----[A-Z ]+-----/g, '')
      .replace(/\s+/g, '');
    const env = Buffer.concat([Buffer.from(`mammatus-sig-v1 ${time} ${nonce} ${blob}\n`), payload]);
    const opened = openEvent(operators, 'mammatus.volume.create', env, NOW, new SeenNonces());
    expect([opened.operator.name, opened.payload.toString()]).toEqual(['alice@test', payload.toString()]);
  });

  it('is an SSHSIG that ssh-keygen -Y verify accepts over the signed message', async () => {
    const env = await sealEvent(alice.key, 'mammatus.volume.create', payload, NOW);
    const [, time, nonce, blob] = env.subarray(0, env.indexOf(0x0a)).toString().split(' ');
    const sigFile = path.join(dir, 'event.sig');
    writeFileSync(sigFile, `-----BEGIN SSH SIGNATURE-----\n${blob.match(/.{1,70}/g)!.join('\n')}\n-----END SSH SIGNATURE-----\n`);
    const allowed = path.join(dir, 'allowed');
    writeFileSync(allowed, `alice@test ${alice.pub.split(' ').slice(0, 2).join(' ')}\n`);
    const r = spawnSync('ssh-keygen', ['-Y', 'verify', '-f', allowed, '-I', 'alice@test', '-n', SIG_NAMESPACE, '-s', sigFile], {
      input: signedMessage('mammatus.volume.create', Number(time), nonce, payload),
    });
    expect(r.status, r.stderr.toString()).toBe(0);
  });
});

describe.skipIf(!hasKeygen)('signing through a real ssh-agent', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-agent-'));
  const socket = path.join(dir, 'agent.sock');
  let pid = 0;
  afterAll(() => {
    if (pid) process.kill(pid, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('signs with the key the agent holds (ed25519 and RSA), verifiable by ssh-keygen', async () => {
    const out = execFileSync('ssh-agent', ['-s', '-a', socket], { encoding: 'utf8' });
    pid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)?.[1] ?? 0);
    const keys = ['ed25519', 'rsa'].map((type) => {
      const file = path.join(dir, type);
      execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `${type}@agent`, '-f', file]);
      execFileSync('ssh-add', ['-q', file], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'pipe' });
      return readFileSync(`${file}.pub`, 'utf8').trim();
    });
    const signers = await agentSigners(socket);
    expect(signers.map((s) => s.comment).sort()).toEqual(['ed25519@agent', 'rsa@agent']);
    const operators = parseOperators(keys);
    for (const signer of signers) {
      const sig = await signSshSig(signer, NS, MESSAGE);
      expect(verifyOperatorSig(operators, sig, NS, MESSAGE).name).toBe(signer.comment);
    }
    await expect(agentSigners(path.join(dir, 'no-such.sock'))).rejects.toThrow(/ssh-agent at/);
  });
});
