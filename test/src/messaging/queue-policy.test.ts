import { describe, expect, test } from 'vitest';
import {
  addPermissionToPolicy,
  checkPermissionGrant,
  permissionStatement,
  removePermissionFromPolicy,
  type PermissionGrant,
} from '../../../src/messaging/queue-policy.js';
import { errorText } from './error-text.js';

const ARN = 'arn:aws:sqs:us-east-1:000000000000:q1';
const grant = (g: Partial<PermissionGrant> = {}): PermissionGrant => ({
  Label: 'L',
  AWSAccountIds: ['111111111111'],
  Actions: ['SendMessage'],
  ...g,
});

const failure = errorText;

describe('policy document', () => {
  test('a statement: single principal and action as strings, lists otherwise', () => {
    expect(permissionStatement(ARN, grant())).toEqual({
      Sid: 'L',
      Effect: 'Allow',
      Principal: { AWS: 'arn:aws:iam::111111111111:root' },
      Action: 'SQS:SendMessage',
      Resource: ARN,
    });
    expect(
      permissionStatement(ARN, grant({ AWSAccountIds: ['111111111111', '222222222222'], Actions: ['*', 'ReceiveMessage'] })),
    ).toMatchObject({
      Principal: { AWS: ['arn:aws:iam::111111111111:root', 'arn:aws:iam::222222222222:root'] },
      Action: ['SQS:*', 'SQS:ReceiveMessage'],
    });
    // The partition follows the queue ARN.
    expect(permissionStatement('arn:aws-cn:sqs:cn-north-1:000000000000:q', grant())).toMatchObject({
      Principal: { AWS: 'arn:aws-cn:iam::111111111111:root' },
    });
  });

  test('the first grant creates the default document; later ones append', () => {
    const one = addPermissionToPolicy(undefined, ARN, grant({ Label: 'a' }));
    expect(JSON.parse(one)).toEqual({
      Version: '2012-10-17',
      Id: `${ARN}/SQSDefaultPolicy`,
      Statement: [permissionStatement(ARN, grant({ Label: 'a' }))],
    });
    const two = addPermissionToPolicy(one, ARN, grant({ Label: 'b' }));
    expect((JSON.parse(two) as { Statement: { Sid: string }[] }).Statement.map((s) => s.Sid)).toEqual(['a', 'b']);
    expect(failure(() => addPermissionToPolicy(two, ARN, grant({ Label: 'a' })))).toBe(
      'InvalidParameterValue: Value a for parameter Label is invalid. Reason: Already exists.',
    );
  });

  test('a policy set with SetQueueAttributes is kept, single Statement object included', () => {
    const own = JSON.stringify({
      Version: '2012-10-17',
      Id: 'mine',
      Statement: { Sid: 'x', Effect: 'Deny', Principal: '*', Action: 'sqs:*', Resource: ARN },
    });
    const next = JSON.parse(addPermissionToPolicy(own, ARN, grant({ Label: 'y' }))) as { Id: string; Statement: { Sid: string }[] };
    expect(next.Id).toBe('mine');
    expect(next.Statement.map((s) => s.Sid)).toEqual(['x', 'y']);
    expect(failure(() => addPermissionToPolicy('not json', ARN, grant()))).toMatch(/^InvalidAttributeValue/);
  });

  test('remove: by label; the last one removes the policy; unknown labels fail', () => {
    const both = addPermissionToPolicy(addPermissionToPolicy(undefined, ARN, grant({ Label: 'a' })), ARN, grant({ Label: 'b' }));
    const onlyB = removePermissionFromPolicy(both, ARN, 'a');
    expect((JSON.parse(onlyB ?? '{}') as { Statement: { Sid: string }[] }).Statement.map((s) => s.Sid)).toEqual(['b']);
    expect(removePermissionFromPolicy(onlyB, ARN, 'b')).toBeUndefined();
    const notFound = "InvalidParameterValue: Value a for parameter Label is invalid. Reason: can't find label on existing policy.";
    expect(failure(() => removePermissionFromPolicy(onlyB, ARN, 'a'))).toBe(notFound);
    expect(failure(() => removePermissionFromPolicy(undefined, ARN, 'a'))).toBe(notFound);
  });
});

describe('AddPermission checks', () => {
  test('valid grants pass', () => {
    expect(failure(() => checkPermissionGrant(grant({ Label: `${'a'.repeat(78)}-_`, Actions: ['*'] })))).toBe('ok');
    expect(
      failure(() =>
        checkPermissionGrant(
          grant({
            Actions: [
              'SendMessage',
              'ReceiveMessage',
              'DeleteMessage',
              'ChangeMessageVisibility',
              'GetQueueAttributes',
              'GetQueueUrl',
              'PurgeQueue',
            ],
          }),
        ),
      ),
    ).toBe('ok');
  });

  test('AWS wording for the failures', () => {
    expect(failure(() => checkPermissionGrant(grant({ Label: '' })))).toBe(
      'MissingParameter: The request must contain the parameter Label.',
    );
    expect(failure(() => checkPermissionGrant(grant({ Label: 'a'.repeat(81) })))).toMatch(
      /^InvalidParameterValue: Value a+ for parameter Label is invalid/,
    );
    expect(failure(() => checkPermissionGrant(grant({ Label: 'a b' })))).toMatch(
      /^InvalidParameterValue: Value a b for parameter Label is invalid/,
    );
    expect(failure(() => checkPermissionGrant(grant({ Actions: [] })))).toBe(
      'MissingParameter: The request must contain the parameter Actions.',
    );
    expect(failure(() => checkPermissionGrant(grant({ AWSAccountIds: [] })))).toBe(
      'InvalidParameterValue: Value [] for parameter PrincipalId is invalid. Reason: Unable to verify.',
    );
    expect(failure(() => checkPermissionGrant(grant({ Actions: Array.from({ length: 8 }, () => 'SendMessage') })))).toBe(
      'OverLimit: 8 Actions were found, maximum allowed is 7.',
    );
    expect(failure(() => checkPermissionGrant(grant({ Actions: ['RemovePermission'] })))).toBe(
      'InvalidParameterValue: Value SQS:RemovePermission for parameter ActionName is invalid. Reason: Only the queue owner is allowed to invoke this action.',
    );
    expect(failure(() => checkPermissionGrant(grant({ Actions: ['FlyToTheMoon'] })))).toMatch(
      /^InvalidParameterValue: Value SQS:FlyToTheMoon for parameter ActionName is invalid/,
    );
  });
});
