/**
 * Makes Dawn's Vulkan backend findable on Linux machines without a GPU driver of their own.
 *
 * Dawn loads `libvulkan.so.1` by name. Debian's chromium package ships both a Vulkan loader
 * and SwiftShader (a CPU Vulkan device) in /usr/lib/chromium. Loading that loader into the
 * process first makes Dawn's later dlopen of the same soname find it, and adding the
 * SwiftShader manifest to `VK_ADD_DRIVER_FILES` (before the Vulkan instance exists) lets the
 * loader offer it next to any real GPU, which stays preferred.
 */
import { existsSync } from 'node:fs';
import koffi from 'koffi';

export const CHROMIUM_DIRECTORY = '/usr/lib/chromium';
export const SWIFTSHADER_ICD = `${CHROMIUM_DIRECTORY}/vk_swiftshader_icd.json`;
const LOADER_NAME = 'libvulkan.so.1';

export interface VulkanSetup {
  /** Where the Vulkan loader came from, or why there is none. */
  readonly loader: string;
  /** The SwiftShader manifest added to the loader's search, when it was. */
  readonly swiftshaderIcd: string | undefined;
  readonly problem: string | undefined;
}

let setup: VulkanSetup | undefined;
// Kept so the loader stays mapped for Dawn.
let loaderLibrary: unknown;

/** Idempotent: the first call decides, later calls return the same answer. */
export function prepareVulkan(): VulkanSetup {
  if (setup !== undefined) return setup;
  if (process.platform !== 'linux') {
    setup = { loader: 'platform default', swiftshaderIcd: undefined, problem: undefined };
    return setup;
  }
  const swiftshaderIcd = addSwiftshaderDriver(process.env, existsSync(SWIFTSHADER_ICD));
  for (const candidate of [LOADER_NAME, `${CHROMIUM_DIRECTORY}/${LOADER_NAME}`]) {
    try {
      loaderLibrary = koffi.load(candidate);
      setup = { loader: candidate, swiftshaderIcd, problem: undefined };
      return setup;
    } catch {
      // Try the next place.
    }
  }
  setup = {
    loader: 'none',
    swiftshaderIcd,
    problem: `no Vulkan loader (${LOADER_NAME}) in the library path or ${CHROMIUM_DIRECTORY}; install libvulkan1 and a driver, or chromium for SwiftShader`,
  };
  return setup;
}

/**
 * Adds SwiftShader's manifest to `environment.VK_ADD_DRIVER_FILES` when it exists, unless the
 * user chose the drivers (VK_ICD_FILENAMES or VK_DRIVER_FILES set). Returns the manifest added.
 */
export function addSwiftshaderDriver(environment: NodeJS.ProcessEnv, icdExists: boolean): string | undefined {
  if (environment.VK_ICD_FILENAMES || environment.VK_DRIVER_FILES || !icdExists) return undefined;
  const current = environment.VK_ADD_DRIVER_FILES;
  if (current?.split(':').includes(SWIFTSHADER_ICD)) return SWIFTSHADER_ICD;
  environment.VK_ADD_DRIVER_FILES = current ? `${current}:${SWIFTSHADER_ICD}` : SWIFTSHADER_ICD;
  return SWIFTSHADER_ICD;
}

/** For tests: whether the loader library was loaded by this module. */
export function vulkanLoaderLoaded(): boolean {
  return loaderLibrary !== undefined;
}
