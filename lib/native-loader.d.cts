export declare function loadNative(): unknown;
export declare function candidates(): string[];
export declare function bundledDirname(dir: string): boolean;
export declare function prebuiltPlatforms(): string[];
