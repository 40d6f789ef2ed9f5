// The one Electron API lib/preload.ts uses, declared here so that building this package needs no
// `electron` package. Apps compile against Electron's own declarations (types/preload.d.ts and
// types/main.d.ts); test/types checks those against the real package.
declare module 'electron' {
  export const ipcRenderer: {
    on(channel: string, listener: (event: any, ...args: any[]) => void): unknown;
    send(channel: string, ...args: unknown[]): void;
  };
}
