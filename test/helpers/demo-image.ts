/**
 * The demo base image for end-to-end tests: built once into a cache shared by every test file and
 * test run (the builder keeps a digest of its inputs beside the image and rebuilds when they change;
 * it writes to temporary files and renames, so two test files building at once is safe).
 */
import {symlink} from 'node:fs/promises';
import {join} from 'node:path';
import {buildDemoImage, type BuildDemoImageResult} from '../../agent/image/build-runner.js';

/** Where tests keep the demo image: `KLOUD_TEST_IMAGE_CACHE`, else a fixed directory under /tmp. */
export const DEMO_IMAGE_CACHE = process.env.KLOUD_TEST_IMAGE_CACHE ?? '/tmp/kloud-test-cache/images';

/** Builds the demo image into the shared cache (at once when it is up to date). */
export async function demoImage(onProgress?: (line: string) => void): Promise<BuildDemoImageResult> {
	return buildDemoImage({outDir: DEMO_IMAGE_CACHE, ...(onProgress ? {onProgress} : {})});
}

/** Makes the demo image available as `demo` in an agent's images directory (a symlink to the cache). */
export async function linkDemoImage(imagesDir: string): Promise<BuildDemoImageResult> {
	const image = await demoImage();
	await symlink(image.path, join(imagesDir, 'demo.qcow2'));
	return image;
}
