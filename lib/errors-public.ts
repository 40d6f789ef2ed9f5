// The errors every entry point exports (lib/index.ts for Node.js, lib/renderer.ts for pages).
export {
  AbortError,
  BufferFullError,
  ClosedError,
  ConnectionLostError,
  ForbiddenError,
  InvalidArgumentError,
  LimitError,
  NoEndpointError,
  NoHandlerError,
  OfflineQueueFullError,
  RemoteError,
  SwitchboardError,
  TimeoutError,
  ValidationError,
} from './errors.js';
export { CodecError } from './codec.js';
