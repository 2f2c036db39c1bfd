/**
 * Loads this platform's native binary before the generated loader (native.js) does, so that a
 * missing or unloadable binary fails with an error that names the platform and the package to
 * install, instead of the loader's generic "Cannot find native binding" (which blames an npm bug).
 *
 * index.ts and cli.ts import this module first: ES modules evaluate their imports in source
 * order, so it runs before any module that imports native.js. A binary loaded here sits in
 * Node's module cache, and the loader's own `require` of the same file gets it from there.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { KafkaDeltaError } from './errors.js';

const require = createRequire(import.meta.url);
const BINARY_NAME = 'kafka-delta-rust';

/** The native binary for this platform is missing or cannot be loaded. */
export class NativeBindingError extends KafkaDeltaError {
  /** The napi-rs platform name, e.g. `linux-x64-gnu`. */
  readonly platform: string;
  /** The npm package that holds the binary for {@link NativeBindingError.platform}. */
  readonly packageName: string;

  constructor(platform: string, packageName: string, message: string, options?: { cause?: unknown }) {
    super('NATIVE_BINDING', message, options);
    this.platform = platform;
    this.packageName = packageName;
  }
}

/** The C library Node runs on, decided the way the generated loader decides it. */
function linuxLibc(): 'gnu' | 'musl' {
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl') ? 'musl' : 'gnu';
  } catch {
    // Node's report names the glibc version only on glibc; the loader assumes glibc when unsure.
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string }; sharedObjects?: string[] } | undefined;
    if (report?.header?.glibcVersionRuntime) return 'gnu';
    return report?.sharedObjects?.some((f) => f.includes('libc.musl-') || f.includes('ld-musl-')) ? 'musl' : 'gnu';
  }
}

/**
 * The napi-rs platform names the generated loader tries on this platform, most specific last;
 * undefined where its choice depends on more than platform, architecture and C library (then
 * the loader reports failures itself).
 */
function loaderPlatforms(): string[] | undefined {
  const { platform, arch } = process;
  if (platform === 'linux' && ['x64', 'arm64', 'riscv64', 'loong64'].includes(arch)) return [`linux-${arch}-${linuxLibc()}`];
  if (platform === 'linux' && arch === 'arm') return [`linux-arm-${linuxLibc()}eabihf`];
  if (platform === 'darwin' && (arch === 'x64' || arch === 'arm64')) return ['darwin-universal', `darwin-${arch}`];
  if (platform === 'freebsd' && (arch === 'x64' || arch === 'arm64')) return [`freebsd-${arch}`];
  // Node builds for MinGW load `-gnu` binaries; the loader tells them apart by Node's build config.
  const variables = (process.config as { variables?: Record<string, unknown> }).variables ?? {};
  const mingw = variables.shlib_suffix === 'dll.a' || variables.node_target_type === 'shared_library';
  if (platform === 'win32' && ['x64', 'arm64', 'ia32'].includes(arch) && !mingw) return [`win32-${arch}-msvc`];
  return undefined;
}

/** The napi-rs platform name of a Rust target triple from package.json's `napi.targets`. */
function platformOfTarget(triple: string): string {
  const [cpu = '', , os = '', abi = ''] = triple.split('-');
  const arch = ({ x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm' } as Record<string, string>)[cpu] ?? cpu;
  if (os === 'darwin') return `darwin-${arch}`;
  if (os === 'windows') return `win32-${arch}-msvc`;
  if (os === 'linux') return `linux-${arch}-${abi.startsWith('musl') ? 'musl' : 'gnu'}${arch === 'arm' ? 'eabihf' : ''}`;
  return `${os}-${arch}`;
}

interface PackageJson {
  version: string;
  napi?: { targets?: string[] };
}

/** Why one candidate location failed: missing, or present but refused by the dynamic loader. */
function reason(error: unknown): { missing: boolean; text: string } {
  const code = (error as { code?: unknown } | null)?.code;
  const text = error instanceof Error ? error.message.split('\n')[0] ?? error.message : String(error);
  return { missing: code === 'MODULE_NOT_FOUND', text };
}

/**
 * Loads the binary the generated loader would load on this platform; throws
 * {@link NativeBindingError} when there is none or it cannot be loaded.
 */
export function assertNativeBinding(): void {
  // The loader's own overrides (an explicit binary path, WebAssembly) are theirs to report.
  if (process.env.NAPI_RS_NATIVE_LIBRARY_PATH || process.env.NAPI_RS_FORCE_WASI) return;
  const platforms = loaderPlatforms();
  if (!platforms) return;
  const platform = platforms[platforms.length - 1] ?? '';
  const packageName = `${BINARY_NAME}-${platform}`;
  // For each platform name, beside the compiled sources (a development build) first, then the
  // platform package: the generated loader's order.
  const candidates = platforms.flatMap((p) => [`./${BINARY_NAME}.${p}.node`, `${BINARY_NAME}-${p}`]);
  const failures: Array<{ candidate: string; missing: boolean; text: string }> = [];
  for (const candidate of candidates) {
    try {
      require(candidate);
      return;
    } catch (error) {
      failures.push({ candidate, ...reason(error) });
    }
  }

  const pkg = require('../package.json') as PackageJson;
  const supported = (pkg.napi?.targets ?? []).map(platformOfTarget);
  const where = `${platform}, Node ${process.version}`;
  const broken = failures.find((f) => !f.missing);
  const lines: string[] = [];
  if (broken) {
    lines.push(
      `${BINARY_NAME}: the native binary for this platform (${where}) was found but could not be loaded:`,
      `  ${broken.text}`,
      `Reinstall the platform package: npm install ${packageName}@${pkg.version}`,
    );
  } else if (supported.length > 0 && !supported.includes(platform)) {
    lines.push(
      `${BINARY_NAME} ${pkg.version} has no native binary for this platform (${where}).`,
      `Binaries exist for: ${supported.join(', ')}.`,
    );
  } else {
    lines.push(
      `${BINARY_NAME}: no native binary for this platform (${where}).`,
      `It ships in the package ${packageName}, an optional dependency npm installs only on a matching`,
      `platform. Install it with:`,
      `  npm install ${packageName}@${pkg.version}`,
      `npm leaves it out when optional dependencies are omitted (--omit=optional), or when`,
      `package-lock.json was written on another platform: then delete node_modules and`,
      `package-lock.json and install again.`,
    );
  }
  lines.push(`Looked for: ${failures.map((f) => `${f.candidate} (${f.text})`).join('; ')}`);
  throw new NativeBindingError(platform, packageName, lines.join('\n'));
}

assertNativeBinding();
