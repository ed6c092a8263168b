/** Errors between controllers keep their service: a code both catalogues have comes back as what it was. */
import { describe, expect, it } from 'vitest';
import { fromWireError, toWireError } from '../../../../src/messaging/engine/codec.js';
import { commonError, MessagingError, SnsError, SqsError, snsError, sqsError } from '../../../../src/messaging/errors.js';

const roundTrip = (err: unknown) => fromWireError(toWireError(err));

describe('errors in RPC replies', () => {
  it('keeps the service of a code both services have (InvalidSecurity)', () => {
    const sns = roundTrip(snsError('InvalidSecurity'));
    expect(sns).toBeInstanceOf(SnsError);
    expect((sns as MessagingError).def.jsonType).toBe('com.amazonaws.sns#InvalidSecurityException');
    expect(roundTrip(sqsError('InvalidSecurity'))).toBeInstanceOf(SqsError);
  });
  it('keeps an explicit message, and front-end errors as front-end errors', () => {
    const again = roundTrip(sqsError('QueueDoesNotExist', 'no queue q1')) as MessagingError;
    expect([again.code, again.message]).toEqual(['AWS.SimpleQueueService.NonExistentQueue', 'no queue q1']);
    const common = roundTrip(commonError('AccessDenied')) as MessagingError;
    expect([common.service, common.code]).toEqual(['common', 'AccessDenied']);
  });
  it('says nothing of an internal failure but that it failed', () => {
    expect(toWireError(new TypeError('x is undefined'))).toEqual({ service: 'internal', message: 'x is undefined' });
    expect(roundTrip(new TypeError('x'))).not.toBeInstanceOf(MessagingError);
  });
});
