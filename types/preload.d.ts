// switchboard-ipc/preload: call exposeBus() in the preload script of a window main attached.
/** Asks main for this page's port and hands it to the page's `new EventBus()`. */
export declare function exposeBus(): void;
