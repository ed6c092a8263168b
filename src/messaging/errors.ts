/**
 * The one catalogue of errors the SQS/SNS API can answer with, and `toAwsError`, the one place that
 * turns anything thrown below the wire layer into one of them.
 *
 * Each entry carries what both wire shapes need: the Query `Code` (also sent in JSON responses as
 * `x-amzn-query-error: <Code>;<Sender|Receiver>`), the JSON `__type`, the HTTP status and the
 * default message. Sources: the botocore SQS/SNS models shipped with awscli 2.9.19, the current
 * `@aws-sdk/client-sqs` schemas (`awsQueryError` traits) and AWS answers quoted in public issues
 * (see `src/messaging/README.md` for the ones that could not be confirmed).
 */

/** Who AWS blames: `Sender` for 4xx, `Receiver` for 5xx. */
export type Fault = 'Sender' | 'Receiver';

/** One catalogue entry. */
export interface ErrorDef {
  /** The Query protocol `<Code>` and the code part of `x-amzn-query-error`. */
  readonly code: string;
  /** The JSON 1.0 `__type`: `<namespace>#<shape>`. */
  readonly jsonType: string;
  readonly status: number;
  readonly fault: Fault;
  /** Message used when the thrower gives none. */
  readonly message: string;
  /** AWS words a few messages differently in JSON (e.g. no "for this wsdl version"). */
  readonly jsonMessage?: string;
}

const SQS_NS = 'com.amazonaws.sqs#';
// AWS JSON services report front-end failures (auth, unknown operation, bad JSON) in this namespace.
const CORAL_NS = 'com.amazon.coral.service#';

function def(code: string, jsonType: string, status: number, message: string, jsonMessage?: string): ErrorDef {
  return { code, jsonType, status, fault: status >= 500 ? 'Receiver' : 'Sender', message, jsonMessage };
}
const sqs = (code: string, shape: string, status: number, message: string, jsonMessage?: string): ErrorDef =>
  def(code, SQS_NS + shape, status, message, jsonMessage);
const coral = (code: string, shape: string, status: number, message: string): ErrorDef => def(code, CORAL_NS + shape, status, message);
// SNS speaks Query only; its jsonType is never sent and just mirrors the model's shape name.
const sns = (code: string, shape: string, status: number, message: string): ErrorDef =>
  def(code, `com.amazonaws.sns#${shape}`, status, message);

/** Errors of the request front end, the same for both services. */
export const CommonErrors = {
  MissingAuthenticationToken: coral(
    'MissingAuthenticationToken',
    'MissingAuthenticationTokenException',
    403,
    'Request is missing Authentication Token',
  ),
  IncompleteSignature: coral(
    'IncompleteSignature',
    'IncompleteSignatureException',
    400,
    'The request signature does not conform to AWS standards.',
  ),
  InvalidClientTokenId: coral(
    'InvalidClientTokenId',
    'UnrecognizedClientException',
    403,
    'The security token included in the request is invalid.',
  ),
  SignatureDoesNotMatch: coral(
    'SignatureDoesNotMatch',
    'InvalidSignatureException',
    403,
    'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
  ),
  AccessDenied: coral('AccessDenied', 'AccessDeniedException', 403, 'Access to the resource is denied.'),
  InvalidAction: coral(
    'InvalidAction',
    'UnknownOperationException',
    400,
    'The action or operation requested is invalid. Verify that the action is typed correctly.',
  ),
  MissingAction: coral('MissingAction', 'MissingActionException', 400, 'The request must contain the parameter Action.'),
  // AWS documents 404 for a query string it cannot parse.
  MalformedQueryString: coral('MalformedQueryString', 'MalformedQueryStringException', 404, 'The query string contains a syntax error.'),
  SerializationException: coral(
    'SerializationException',
    'SerializationException',
    400,
    'The request body is not valid JSON for this operation.',
  ),
  InternalFailure: coral(
    'InternalFailure',
    'InternalFailure',
    500,
    'The request processing has failed because of an unknown error, exception or failure.',
  ),
  ServiceUnavailable: coral(
    'ServiceUnavailable',
    'ServiceUnavailableException',
    503,
    'The request has failed due to a temporary failure of the server.',
  ),
} as const satisfies Record<string, ErrorDef>;

/** SQS errors; keys are the JSON shape names of the current model. */
export const SqsErrors = {
  QueueDoesNotExist: sqs(
    'AWS.SimpleQueueService.NonExistentQueue',
    'QueueDoesNotExist',
    400,
    'The specified queue does not exist for this wsdl version.',
    'The specified queue does not exist.',
  ),
  QueueNameExists: sqs(
    'QueueAlreadyExists',
    'QueueNameExists',
    400,
    'A queue already exists with the same name and a different value for an attribute.',
  ),
  QueueDeletedRecently: sqs(
    'AWS.SimpleQueueService.QueueDeletedRecently',
    'QueueDeletedRecently',
    400,
    'You must wait 60 seconds after deleting a queue before you can create another queue with the same name.',
  ),
  PurgeQueueInProgress: sqs(
    'AWS.SimpleQueueService.PurgeQueueInProgress',
    'PurgeQueueInProgress',
    403,
    'Only one PurgeQueue operation on a queue is allowed every 60 seconds.',
  ),
  InvalidParameterValue: sqs('InvalidParameterValue', 'InvalidParameterValueException', 400, 'One or more parameters are invalid.'),
  MissingParameter: sqs('MissingParameter', 'MissingRequiredParameterException', 400, 'A required parameter is missing.'),
  InvalidAttributeName: sqs('InvalidAttributeName', 'InvalidAttributeName', 400, 'Unknown Attribute.'),
  InvalidAttributeValue: sqs('InvalidAttributeValue', 'InvalidAttributeValue', 400, 'Invalid value for an attribute.'),
  // The current model says 404 (awsQueryError trait); the 2.9.19 model had no status (400).
  ReceiptHandleIsInvalid: sqs(
    'ReceiptHandleIsInvalid',
    'ReceiptHandleIsInvalid',
    404,
    'The input receipt handle is not a valid receipt handle.',
  ),
  MessageNotInflight: sqs(
    'AWS.SimpleQueueService.MessageNotInflight',
    'MessageNotInflight',
    400,
    'Message does not exist or is not available for visibility timeout change.',
  ),
  EmptyBatchRequest: sqs(
    'AWS.SimpleQueueService.EmptyBatchRequest',
    'EmptyBatchRequest',
    400,
    'There should be at least one entry in the request.',
  ),
  TooManyEntriesInBatchRequest: sqs(
    'AWS.SimpleQueueService.TooManyEntriesInBatchRequest',
    'TooManyEntriesInBatchRequest',
    400,
    'Maximum number of entries per request are 10.',
  ),
  BatchEntryIdsNotDistinct: sqs(
    'AWS.SimpleQueueService.BatchEntryIdsNotDistinct',
    'BatchEntryIdsNotDistinct',
    400,
    'Two or more batch entries in the request have the same Id.',
  ),
  InvalidBatchEntryId: sqs(
    'AWS.SimpleQueueService.InvalidBatchEntryId',
    'InvalidBatchEntryId',
    400,
    'A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.',
  ),
  BatchRequestTooLong: sqs(
    'AWS.SimpleQueueService.BatchRequestTooLong',
    'BatchRequestTooLong',
    400,
    'Batch requests cannot be longer than 1048576 bytes.',
  ),
  InvalidMessageContents: sqs(
    'InvalidMessageContents',
    'InvalidMessageContents',
    400,
    'The message contains characters outside the allowed set.',
  ),
  InvalidIdFormat: sqs('InvalidIdFormat', 'InvalidIdFormat', 400, 'The specified receipt handle is not valid for the current version.'),
  OverLimit: sqs('OverLimit', 'OverLimit', 403, 'The maximum number of in flight messages is reached.'),
  UnsupportedOperation: sqs(
    'AWS.SimpleQueueService.UnsupportedOperation',
    'UnsupportedOperation',
    400,
    'The operation is not supported for this queue.',
  ),
  InvalidAddress: sqs('InvalidAddress', 'InvalidAddress', 404, 'The address is not valid for this endpoint.'),
  InvalidSecurity: sqs('InvalidSecurity', 'InvalidSecurity', 403, 'The request was not made over HTTPS or did not use SigV4 for signing.'),
  RequestThrottled: sqs('RequestThrottled', 'RequestThrottled', 403, 'The request was denied due to request throttling.'),
  ResourceNotFoundException: sqs(
    'ResourceNotFoundException',
    'ResourceNotFoundException',
    404,
    'One or more specified resources do not exist.',
  ),
} as const satisfies Record<string, ErrorDef>;

/** SNS errors (Query only); keys are the model's exception shape names without `Exception`. */
export const SnsErrors = {
  InvalidParameter: sns('InvalidParameter', 'InvalidParameterException', 400, 'Invalid parameter'),
  ParameterValueInvalid: sns('ParameterValueInvalid', 'InvalidParameterValueException', 400, 'Invalid parameter value'),
  // AWS's request validator; used for missing or mistyped members.
  ValidationError: sns('ValidationError', 'ValidationException', 400, '1 validation error detected'),
  NotFound: sns('NotFound', 'NotFoundException', 404, 'Resource does not exist'),
  ResourceNotFound: sns('ResourceNotFound', 'ResourceNotFoundException', 404, 'Resource does not exist'),
  AuthorizationError: sns('AuthorizationError', 'AuthorizationErrorException', 403, 'Not authorized'),
  InternalError: sns('InternalError', 'InternalErrorException', 500, 'Internal Error'),
  Throttled: sns('Throttled', 'ThrottledException', 429, 'Rate exceeded'),
  SubscriptionLimitExceeded: sns('SubscriptionLimitExceeded', 'SubscriptionLimitExceededException', 403, 'Subscription limit exceeded'),
  TopicLimitExceeded: sns('TopicLimitExceeded', 'TopicLimitExceededException', 403, 'Topic limit exceeded'),
  FilterPolicyLimitExceeded: sns('FilterPolicyLimitExceeded', 'FilterPolicyLimitExceededException', 403, 'Filter policy limit exceeded'),
  TagLimitExceeded: sns(
    'TagLimitExceeded',
    'TagLimitExceededException',
    400,
    'Could not complete request: tag quota of per resource exceeded',
  ),
  StaleTag: sns('StaleTag', 'StaleTagException', 400, 'A tag has been added to a resource with the same ARN as a deleted resource.'),
  TagPolicy: sns('TagPolicy', 'TagPolicyException', 400, 'The request does not comply with the tag policy.'),
  ConcurrentAccess: sns('ConcurrentAccess', 'ConcurrentAccessException', 400, 'Can not run concurrent operations on the same resource.'),
  EndpointDisabled: sns('EndpointDisabled', 'EndpointDisabledException', 400, 'Endpoint is disabled'),
  InvalidSecurity: sns('InvalidSecurity', 'InvalidSecurityException', 403, 'The request was not signed correctly.'),
  EmptyBatchRequest: sns('EmptyBatchRequest', 'EmptyBatchRequestException', 400, 'The batch request does not contain any entries.'),
  TooManyEntriesInBatchRequest: sns(
    'TooManyEntriesInBatchRequest',
    'TooManyEntriesInBatchRequestException',
    400,
    'The batch request contains more entries than permissible.',
  ),
  BatchEntryIdsNotDistinct: sns(
    'BatchEntryIdsNotDistinct',
    'BatchEntryIdsNotDistinctException',
    400,
    'Two or more batch entries in the request have the same Id.',
  ),
  InvalidBatchEntryId: sns(
    'InvalidBatchEntryId',
    'InvalidBatchEntryIdException',
    400,
    'The Id of a batch entry in a batch request does not abide by the specification.',
  ),
  BatchRequestTooLong: sns(
    'BatchRequestTooLong',
    'BatchRequestTooLongException',
    400,
    'The length of all the batch messages put together is more than the limit.',
  ),
} as const satisfies Record<string, ErrorDef>;

/** Which of the two APIs a request belongs to; decides namespaces and the 500 code. */
export type Service = 'sqs' | 'sns';
/** The two wire shapes. */
export type WireProtocol = 'query' | 'json';

/** An error with a catalogue entry: everything the wire layer needs to answer it. */
export class MessagingError extends Error {
  override readonly name: string = 'MessagingError';
  /** Which service's catalogue the error comes from (`common`: the front end, the same for both). */
  readonly service: 'sqs' | 'sns' | 'common' = 'common';
  /** The message the thrower chose, if any (else the catalogue's, per protocol). */
  private readonly explicit: boolean;
  constructor(
    readonly def: ErrorDef,
    message?: string,
    options?: ErrorOptions,
  ) {
    super(message ?? def.message, options);
    this.explicit = message !== undefined;
  }
  /** The Query code (`AWS.SimpleQueueService.NonExistentQueue`, `SignatureDoesNotMatch`, …). */
  get code(): string {
    return this.def.code;
  }
  /** The message as AWS words it in `protocol`. */
  messageFor(protocol: WireProtocol): string {
    if (this.explicit) return this.message;
    return protocol === 'json' ? (this.def.jsonMessage ?? this.def.message) : this.def.message;
  }
}

/** An SQS-specific error (engine or wire layer). */
export class SqsError extends MessagingError {
  override readonly name: string = 'SqsError';
  override readonly service = 'sqs';
}
/** An SNS-specific error (engine or wire layer). */
export class SnsError extends MessagingError {
  override readonly name: string = 'SnsError';
  override readonly service = 'sns';
}

/** A failed entry of a batch action, as both services answer it. */
export interface BatchResultErrorEntry {
  readonly Id: string;
  readonly SenderFault: boolean;
  readonly Code: string;
  readonly Message?: string;
}

/**
 * A batch entry's failure from an error thrown while handling it: batch actions report entries,
 * not the request. Anything that is not one of our errors is not the entry's fault: it is rethrown
 * and fails the whole request.
 */
export function toBatchEntry(id: string, err: unknown): BatchResultErrorEntry {
  if (!(err instanceof MessagingError)) throw err;
  return { Id: id, SenderFault: err.def.fault === 'Sender', Code: err.code, Message: err.message };
}

/** Builds an `SqsError` from its catalogue key: `sqsError('QueueDoesNotExist')`. */
export function sqsError(key: keyof typeof SqsErrors, message?: string, options?: ErrorOptions): SqsError {
  return new SqsError(SqsErrors[key], message, options);
}
/** Builds an `SnsError` from its catalogue key: `snsError('NotFound', 'Topic does not exist')`. */
export function snsError(key: keyof typeof SnsErrors, message?: string, options?: ErrorOptions): SnsError {
  return new SnsError(SnsErrors[key], message, options);
}
/** Builds a front-end error (auth, action, parsing) from its catalogue key. */
export function commonError(key: keyof typeof CommonErrors, message?: string, options?: ErrorOptions): MessagingError {
  return new MessagingError(CommonErrors[key], message, options);
}

/**
 * The one translator: a `MessagingError` passes through; anything else (a JetStream failure, a bug)
 * becomes the service's 500 (`InternalFailure` for SQS, `InternalError` for SNS) with the catalogue's
 * message only, so no internal detail reaches the client. The original stays as `cause` for logging.
 */
export function toAwsError(err: unknown, service: Service): MessagingError {
  if (err instanceof MessagingError) return err;
  return service === 'sns'
    ? new SnsError(SnsErrors.InternalError, undefined, { cause: err })
    : new MessagingError(CommonErrors.InternalFailure, undefined, { cause: err });
}
