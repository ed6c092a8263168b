import { createVerify, X509Certificate } from 'node:crypto';
import { expect, test } from 'vitest';
import { generateSigningIdentity, identityFrom, signDocument, stringToSign } from '../../../../src/messaging/engine/sns-signing.js';

const identity = generateSigningIdentity('test-sns', new Date('2030-01-02T03:04:05Z'));

test('the generated certificate is a valid self-signed X.509 certificate', () => {
  const cert = new X509Certificate(identity.certPem);
  expect(cert.subject).toBe('CN=test-sns');
  expect(cert.verify(cert.publicKey)).toBe(true);
  expect(cert.validFrom).toContain('2030');
  expect(identity.id).toMatch(/^[0-9a-f]{32}$/);
});

test('signatures v1 and v2 over AWS string to sign', () => {
  const doc = { Type: 'Notification', MessageId: 'id', TopicArn: 'arn', Message: 'hi', Timestamp: 't', UnsubscribeURL: 'u' };
  expect(stringToSign(doc)).toBe('Message\nhi\nMessageId\nid\nTimestamp\nt\nTopicArn\narn\nType\nNotification\n');
  const key = new X509Certificate(identity.certPem).publicKey;
  expect(
    createVerify('RSA-SHA1')
      .update(stringToSign(doc))
      .verify(key, signDocument(doc, identity, '1'), 'base64'),
  ).toBe(true);
  expect(
    createVerify('RSA-SHA256')
      .update(stringToSign(doc))
      .verify(key, signDocument(doc, identity, '2'), 'base64'),
  ).toBe(true);
  expect(
    stringToSign({
      Type: 'SubscriptionConfirmation',
      Token: 'k',
      SubscribeURL: 's',
      Message: 'm',
      MessageId: 'i',
      Timestamp: 't',
      TopicArn: 'a',
    }),
  ).toBe('Message\nm\nMessageId\ni\nSubscribeURL\ns\nTimestamp\nt\nToken\nk\nTopicArn\na\nType\nSubscriptionConfirmation\n');
});

test('a key that does not match the certificate is refused', () => {
  const other = generateSigningIdentity();
  expect(() => identityFrom(other.keyPem, identity.certPem)).toThrow(/do not match/);
  expect(identityFrom(identity.keyPem, identity.certPem).id).toBe(identity.id);
});
