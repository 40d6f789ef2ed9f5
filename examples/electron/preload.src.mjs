// The preload: sandboxed (Electron's default). It exposes nothing but the bus's port.
import { exposeBus } from 'switchboard-ipc/preload';

exposeBus();
