export declare function loadNative(): unknown;
export declare function candidates(): string[];
export declare function prebuiltPlatforms(): string[];
