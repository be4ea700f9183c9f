/**
 * Builds the demo base image (`<outDir>/demo.qcow2`) from Debian packages only: the kernel of
 * `linux-image-amd64` and `busybox-static` (downloaded with `apt-get download` and unpacked, never
 * installed), a gzipped cpio initramfs, and a FAT "superfloppy" made with mtools and made bootable
 * with `syslinux --install` (no loop mount, no root needed beyond apt's). The only module of the image
 * builder that runs programs; everything it writes into the image comes from `demo-image.ts`.
 *
 * Downloads are kept in `<outDir>/.cache/debs`; a digest of the inputs (package files, the builder's
 * own source) is kept in `<outDir>/.cache/demo.inputs`, so building again with nothing changed
 * returns at once. The image is written to a temporary file and renamed into place.
 */
import {createHash, randomBytes} from 'node:crypto';
import {constants} from 'node:fs';
import {access, copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, truncate, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {basename, delimiter, dirname, extname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
import {gzipSync} from 'node:zlib';
import {execa} from 'execa';
import {createCpioArchive, type CpioEntry} from './cpio.js';
import {
	BOOT_VOLUME_LABEL,
	BUSYBOX_PACKAGE,
	DEMO_IMAGE_FILE,
	DEMO_MODULES,
	formatModulesDep,
	kernelPackageFromDepends,
	KERNEL_META_PACKAGE,
	LIBRARY_DIR,
	ModuleResolutionError,
	moduleName,
	parseModuleIndex,
	parsePrintUris,
	POWER_BUTTON_SCRIPT,
	renderInitScript,
	renderSyslinuxConfig,
	resolveModules,
	SSH_PACKAGES,
	SSH_PROGRAMS,
	UDHCPC_SCRIPT,
	type DebDownload,
} from './demo-image.js';
import {ElfFormatError, neededClosure, readElfDynamic, type ElfDynamicInfo} from './elf-dynamic.js';
import {moduleDependencies} from './modinfo.js';

/** Options of `buildDemoImage`. */
export type BuildDemoImageOptions = {
	/** Where `demo.qcow2` goes; created if missing. Downloads are cached in its `.cache`. */
	outDir: string;
	/** Receives one human-readable line per step. */
	onProgress?: (line: string) => void;
	/** Rebuild even when the image is up to date with its inputs. */
	force?: boolean;
};

/** What `buildDemoImage` produced. */
export type BuildDemoImageResult = {
	/** Absolute path of the image. */
	path: string;
	sizeBytes: number;
	/** True when the existing image was up to date and left as it was. */
	cached: boolean;
};

/** Programs the builder runs, and the Debian package of each. */
export const BUILDER_TOOLS: Readonly<Record<string, string>> = {
	'apt-get': 'apt',
	'apt-cache': 'apt',
	'dpkg-deb': 'dpkg',
	mformat: 'mtools',
	mcopy: 'mtools',
	syslinux: 'syslinux',
	'qemu-img': 'qemu-utils',
};

/** Thrown before anything is built when programs the builder runs are missing. */
export class MissingPackagesError extends Error {
	override name = 'MissingPackagesError';
	/** The Debian packages to install, sorted. */
	readonly packages: readonly string[];

	constructor(packages: readonly string[]) {
		super(`the demo image builder needs these Debian packages: ${packages.join(' ')}. Install them with: apt-get install -y ${packages.join(' ')}`);
		this.packages = packages;
	}
}

/** Thrown when a step of the build fails; the message names the step, `cause` holds the original error. */
export class ImageBuildError extends Error {
	override name = 'ImageBuildError';
}

const MIB = 1024 * 1024;

/** The FAT image holds the kernel and initramfs plus this much room. */
const FAT_SLACK_MIB = 4;

/** The Debian packages whose programs are missing from PATH, sorted; empty when all are there. */
export async function findMissingPackages(tools: Readonly<Record<string, string>> = BUILDER_TOOLS): Promise<string[]> {
	const missing = new Set<string>();
	await Promise.all(
		Object.entries(tools).map(async ([tool, packageName]) => {
			if (!(await isOnPath(tool))) {
				missing.add(packageName);
			}
		}),
	);
	return [...missing].sort();
}

/**
 * Builds `<outDir>/demo.qcow2` unless it is already up to date with its inputs (then `cached` is
 * true). Throws `MissingPackagesError` before doing anything if a program it runs is missing, and
 * `ImageBuildError` (with the cause) when a step fails; a failed build leaves the previous image.
 */
export async function buildDemoImage(options: BuildDemoImageOptions): Promise<BuildDemoImageResult> {
	const progress = options.onProgress ?? (() => {});
	const outDir = resolve(options.outDir);
	const cacheDir = join(outDir, '.cache');
	const debsDir = join(cacheDir, 'debs');
	const imagePath = join(outDir, DEMO_IMAGE_FILE);
	const stampPath = join(cacheDir, 'demo.inputs');

	const missing = await findMissingPackages();
	if (missing.length > 0) {
		throw new MissingPackagesError(missing);
	}

	await mkdir(debsDir, {recursive: true});
	progress('resolving packages with apt');
	const kernelPackage = await resolveKernelPackage();
	const downloads = await printUris([kernelPackage, BUSYBOX_PACKAGE, ...SSH_PACKAGES]);
	const wanted = (name: string): DebDownload => {
		const download = downloads.find(entry => entry.package === name);
		if (!download) {
			throw new ImageBuildError(`apt has no download for ${name}: run apt-get update`);
		}

		return download;
	};

	const kernelDeb = wanted(kernelPackage);
	const busyboxDeb = wanted(BUSYBOX_PACKAGE);
	const sshDebs = SSH_PACKAGES.map(wanted);
	const digest = await inputsDigest([kernelDeb, busyboxDeb, ...sshDebs]);
	if (!options.force) {
		const [stamp, image] = await Promise.all([readFile(stampPath, 'utf8').catch(() => ''), stat(imagePath).catch(() => undefined)]);
		if (image?.isFile() && stamp.trim() === digest) {
			progress(`${imagePath} is up to date`);
			return {path: imagePath, sizeBytes: image.size, cached: true};
		}
	}

	const [kernelFile, busyboxFile] = [await fetchDeb(kernelDeb, debsDir, progress), await fetchDeb(busyboxDeb, debsDir, progress)];
	const sshFiles: string[] = [];
	for (const deb of sshDebs) {
		sshFiles.push(await fetchDeb(deb, debsDir, progress));
	}

	const work = await mkdtemp(join(tmpdir(), 'kloud-image-'));
	const temporaryImage = join(outDir, `.${DEMO_IMAGE_FILE}.${randomBytes(4).toString('hex')}.tmp`);
	try {
		const kernel = await cachedKernel({deb: kernelDeb, file: kernelFile, cacheDir, work, force: options.force ?? false, progress});
		const modules = await collectModules(kernel.dir);
		const busyboxRoot = join(work, 'busybox');
		await run('unpack the busybox package', 'dpkg-deb', ['-x', busyboxFile, busyboxRoot]);
		const busybox = join(busyboxRoot, 'bin', 'busybox');
		const applets = (await run('list the busybox applets', busybox, ['--list-full'])).stdout.split('\n').filter(line => line.trim() !== '');
		const ssh = await sshServerFiles(sshFiles, join(work, 'ssh'));
		const initramfs = gzipSync(createCpioArchive(await initramfsEntries({busybox, applets, modules, ssh})), {level: 9});
		progress(`initramfs: ${modules.length} modules, ${applets.length} busybox applets, dropbear with ${ssh.length - SSH_PROGRAMS.length - 1} libraries, ${formatMib(initramfs.length)} gzipped`);

		const staging = join(work, 'fat');
		await mkdir(staging);
		await Promise.all([
			copyFile(join(kernel.dir, 'vmlinuz'), join(staging, 'vmlinuz')),
			writeFile(join(staging, 'initrd.gz'), initramfs),
			writeFile(join(staging, 'syslinux.cfg'), renderSyslinuxConfig()),
		]);
		const kernelSize = (await stat(join(kernel.dir, 'vmlinuz'))).size;
		const fatMib = Math.ceil((kernelSize + initramfs.length) / MIB) + FAT_SLACK_MIB;
		const fatImage = join(work, 'demo.img');
		progress(`FAT image: ${fatMib} MiB, kernel ${kernel.version}`);
		await writeFile(fatImage, '');
		await truncate(fatImage, fatMib * MIB);
		// 64 heads × 32 sectors: one MiB per cylinder, so the size is a whole number of cylinders.
		await run('format the FAT image', 'mformat', ['-i', fatImage, '-v', BOOT_VOLUME_LABEL, '-h', '64', '-s', '32', '-T', String(fatMib * 2048), '::']);
		await run('install syslinux', 'syslinux', ['--install', fatImage]);
		await run('copy the kernel and initramfs', 'mcopy', ['-i', fatImage, join(staging, 'vmlinuz'), join(staging, 'initrd.gz'), join(staging, 'syslinux.cfg'), '::/']);

		progress(`converting to qcow2`);
		await run('convert the image to qcow2', 'qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', fatImage, temporaryImage]);
		await rename(temporaryImage, imagePath);
		await writeAtomically(stampPath, `${digest}\n`);
		const {size} = await stat(imagePath);
		progress(`wrote ${imagePath} (${formatMib(size)})`);
		return {path: imagePath, sizeBytes: size, cached: false};
	} finally {
		await Promise.all([rm(work, {recursive: true, force: true}), rm(temporaryImage, {force: true})]);
	}
}

async function resolveKernelPackage(): Promise<string> {
	const {stdout} = await run(`look up ${KERNEL_META_PACKAGE}`, 'apt-cache', ['show', '--no-all-versions', KERNEL_META_PACKAGE]);
	const depends = /^Depends:(.*)$/m.exec(stdout)?.[1] ?? '';
	const kernelPackage = kernelPackageFromDepends(depends);
	if (!kernelPackage) {
		throw new ImageBuildError(`${KERNEL_META_PACKAGE} names no kernel package in its Depends ("${depends.trim()}")`);
	}

	return kernelPackage;
}

async function printUris(packages: readonly string[]): Promise<DebDownload[]> {
	const {stdout} = await run(`look up ${packages.join(', ')}`, 'apt-get', ['download', '--print-uris', ...packages]);
	return parsePrintUris(stdout);
}

/** The cached copy of a package file, downloaded first when it is missing or does not match. */
async function fetchDeb(download: DebDownload, debsDir: string, progress: (line: string) => void): Promise<string> {
	const path = join(debsDir, download.fileName);
	if (await hasDigest(path, download)) {
		return path;
	}

	progress(`downloading ${download.fileName} (${formatMib(download.size)})`);
	const scratch = await mkdtemp(join(debsDir, '.download-'));
	try {
		// As root, apt-get drops to the _apt user for downloads, who cannot write into our directory.
		const sandbox = process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : [];
		await run(`download ${download.package}`, 'apt-get', ['download', '-q', ...sandbox, download.package], {cwd: scratch});
		const downloaded = join(scratch, download.fileName);
		if (!(await hasDigest(downloaded, download))) {
			throw new ImageBuildError(`download ${download.package}: ${download.fileName} is missing or does not match apt's SHA256`);
		}

		await rename(downloaded, path);
		return path;
	} finally {
		await rm(scratch, {recursive: true, force: true});
	}
}

async function hasDigest(path: string, download: DebDownload): Promise<boolean> {
	const bytes = await readFile(path).catch(() => undefined);
	if (!bytes || bytes.length !== download.size) {
		return false;
	}

	return download.sha256 === '' || createHash('sha256').update(bytes).digest('hex') === download.sha256;
}

/**
 * The builder's own sources: its TypeScript where this checkout has it (run by vitest from
 * agent/image, or built into dist/agent/image beside it), so the tests and the built agent share
 * one stamp and never rebuild the image under each other's VMs; else (an installed package) its
 * JavaScript.
 */
export async function builderSources(): Promise<{readonly directory: string; readonly names: readonly string[]}> {
	const self = fileURLToPath(import.meta.url);
	const here = dirname(self);
	const candidates = extname(self) === '.ts' ? [{directory: here, extension: '.ts'}] : [{directory: join(here, '..', '..', '..', 'agent', 'image'), extension: '.ts'}, {directory: here, extension: '.js'}];
	for (const {directory, extension} of candidates) {
		// eslint-disable-next-line no-await-in-loop
		const names = (await readdir(directory).catch(() => [])).filter(name => name.endsWith(extension) && !name.endsWith('.d.ts')).sort();
		if (names.length > 0) {
			return {directory, names};
		}
	}

	return {directory: here, names: []};
}

/** The package files and the builder's own sources: what the image is made of. */
async function inputsDigest(debs: readonly DebDownload[]): Promise<string> {
	const {directory, names: sources} = await builderSources();
	const hash = createHash('sha256');
	for (const deb of debs) {
		hash.update(`deb ${deb.fileName} ${deb.sha256}\n`);
	}

	for (const name of sources) {
		hash.update(`source ${name}\n`).update(await readFile(join(directory, name))).update('\n');
	}

	return hash.digest('hex');
}

/** A kernel unpacked into the cache: `vmlinuz`, `version`, `modules.builtin`, `modules.dep` and `modules/…`. */
type CachedKernel = {dir: string; version: string};

type CachedKernelOptions = {
	deb: DebDownload;
	file: string;
	cacheDir: string;
	work: string;
	force: boolean;
	progress: (line: string) => void;
};

/**
 * The kernel and the modules the image needs (with their dependencies), taken out of the kernel
 * package once and kept in the cache: unpacking the package (400 MB of modules, xz) is the slowest
 * step of a build. Keyed by the package file and `DEMO_MODULES`.
 */
async function cachedKernel(options: CachedKernelOptions): Promise<CachedKernel> {
	const key = createHash('sha256').update(`${options.deb.fileName} ${options.deb.sha256} ${DEMO_MODULES.join(',')}`).digest('hex').slice(0, 12);
	const dir = join(options.cacheDir, `kernel-${key}`);
	if (!options.force) {
		const version = await readFile(join(dir, 'version'), 'utf8').catch(() => undefined);
		if (version !== undefined) {
			return {dir, version: version.trim()};
		}
	}

	options.progress(`unpacking ${options.deb.fileName}`);
	const root = join(options.work, 'kernel');
	await run('unpack the kernel package', 'dpkg-deb', ['-x', options.file, root]);
	const boot = join(root, 'boot');
	const vmlinuz = (await readdir(boot).catch(() => [] as string[])).find(name => name.startsWith('vmlinuz-'));
	if (!vmlinuz) {
		throw new ImageBuildError(`${options.deb.fileName} has no /boot/vmlinuz-*`);
	}

	const version = vmlinuz.slice('vmlinuz-'.length);
	let modulesDir: string | undefined;
	for (const candidate of [join(root, 'lib', 'modules', version), join(root, 'usr', 'lib', 'modules', version)]) {
		if (await stat(candidate).then(entry => entry.isDirectory(), () => false)) {
			modulesDir = candidate;
			break;
		}
	}

	if (modulesDir === undefined) {
		throw new ImageBuildError(`${options.deb.fileName} has no modules directory for ${version}`);
	}

	const builtinText = await readFile(join(modulesDir, 'modules.builtin'), 'utf8').catch(() => '');
	const graph = await moduleGraph(modulesDir, parseModuleIndex(builtinText));
	const staging = `${dir}.${randomBytes(4).toString('hex')}.tmp`;
	try {
		await mkdir(join(staging, 'modules'), {recursive: true});
		await copyFile(join(boot, vmlinuz), join(staging, 'vmlinuz'));
		for (const path of graph.keys()) {
			await mkdir(dirname(join(staging, 'modules', path)), {recursive: true});
			await copyFile(join(modulesDir, path), join(staging, 'modules', path));
		}

		await writeFile(join(staging, 'modules.builtin'), builtinText);
		await writeFile(join(staging, 'modules.dep'), formatModulesDep(graph));
		await writeFile(join(staging, 'version'), `${version}\n`);
		if (options.force) {
			await rm(dir, {recursive: true, force: true});
		}

		await rename(staging, dir).catch(async (error: unknown) => {
			// Another build filled the same cache entry first: use theirs.
			const isTaken = ['ENOTEMPTY', 'EEXIST'].includes((error as NodeJS.ErrnoException).code ?? '');
			if (!isTaken || !(await stat(join(dir, 'version')).catch(() => undefined))) {
				throw new ImageBuildError(`cannot store the kernel in ${dir}`, {cause: error});
			}
		});
	} finally {
		await rm(staging, {recursive: true, force: true});
	}

	return {dir, version};
}

/**
 * The dependency graph (module path → paths it needs) of `DEMO_MODULES` that are not built in, and of
 * everything they need. From the package's `modules.dep` if it has one; Debian's has none (its
 * postinst runs depmod), so otherwise from each module's `depends=`, as depmod does.
 */
async function moduleGraph(modulesDir: string, builtin: ReadonlyMap<string, string>): Promise<Map<string, string[]>> {
	const wanted = DEMO_MODULES.filter(name => !builtin.has(name));
	const depText = await readFile(join(modulesDir, 'modules.dep'), 'utf8').catch(() => undefined);
	const graph = new Map<string, string[]>();
	if (depText !== undefined) {
		const full = new Map<string, string[]>();
		for (const line of depText.split('\n')) {
			const [path = '', needs = ''] = line.split(':');
			full.set(path.trim(), needs.trim().split(/\s+/).filter(need => need !== ''));
		}

		for (const path of resolveModules(depText, wanted)) {
			graph.set(path, full.get(path) ?? []);
		}

		return graph;
	}

	const index = parseModuleIndex(await readFile(join(modulesDir, 'modules.order'), 'utf8').catch(() => ''));
	const pending = [...wanted];
	while (pending.length > 0) {
		const name = moduleName(pending.shift()!);
		const path = index.get(name);
		if (path === undefined) {
			throw new ModuleResolutionError(`kernel module ${name} is neither in modules.order nor built in`);
		}

		if (graph.has(path)) {
			continue;
		}

		const needs = moduleDependencies(await readModule(join(modulesDir, path)), path).filter(need => !builtin.has(moduleName(need)));
		graph.set(
			path,
			needs.map(need => index.get(moduleName(need)) ?? need),
		);
		pending.push(...needs);
	}

	return graph;
}

type Module = {fileName: string; bytes: Uint8Array};

/** The modules to put into the initramfs, in load order, from a cached kernel. */
async function collectModules(kernelDir: string): Promise<Module[]> {
	const builtin = parseModuleIndex(await readFile(join(kernelDir, 'modules.builtin'), 'utf8'));
	const depText = await readFile(join(kernelDir, 'modules.dep'), 'utf8');
	const order = resolveModules(depText, DEMO_MODULES.filter(name => !builtin.has(name)));
	return Promise.all(
		order.map(async path => ({fileName: basename(path).replace(/\.(?:xz|zst|gz)$/, ''), bytes: await readModule(join(kernelDir, 'modules', path))})),
	);
}

/** A module's ELF bytes; compressed modules (newer Debian kernels) are unpacked, busybox insmod wants them plain. */
async function readModule(path: string): Promise<Uint8Array> {
	const decompressor = path.endsWith('.xz') ? 'xz' : path.endsWith('.zst') ? 'zstd' : path.endsWith('.gz') ? 'gzip' : undefined;
	if (decompressor === undefined) {
		return readFile(path);
	}

	if (!(await isOnPath(decompressor))) {
		throw new MissingPackagesError([decompressor === 'xz' ? 'xz-utils' : decompressor]);
	}

	const {stdout} = await run(`decompress ${basename(path)}`, decompressor, ['-dc', path], {encoding: 'buffer'});
	return stdout;
}

/** A file for the initramfs: its path there, its bytes. */
type GuestFile = {path: string; bytes: Uint8Array};

/**
 * dropbear's programs, the libraries they load (found by soname in the unpacked packages' library
 * directories) and glibc's loader at the path the programs name: nothing else of the packages.
 */
async function sshServerFiles(debFiles: readonly string[], root: string): Promise<GuestFile[]> {
	for (const file of debFiles) {
		await run(`unpack ${basename(file)}`, 'dpkg-deb', ['-x', file, root]);
	}

	const read = async (path: string): Promise<{bytes: Uint8Array; info: ElfDynamicInfo} | undefined> => {
		const bytes = await readFile(join(root, path)).catch(() => undefined);
		if (bytes === undefined) {
			return undefined;
		}

		try {
			return {bytes, info: readElfDynamic(bytes, path)};
		} catch (error) {
			throw new ImageBuildError(`cannot read ${path} from the SSH packages: ${(error as ElfFormatError).message}`, {cause: error});
		}
	};

	// Only relative links inside the packages are followed: the loader's own /lib64 link is absolute.
	const libraries = new Map<string, {bytes: Uint8Array; info: ElfDynamicInfo}>();
	const findLibrary = async (soname: string): Promise<void> => {
		for (const directory of ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu']) {
			const found = await read(join(directory, soname));
			if (found) {
				libraries.set(soname, found);
				return;
			}
		}
	};

	const programs: GuestFile[] = [];
	const infos: ElfDynamicInfo[] = [];
	for (const path of SSH_PROGRAMS) {
		const found = await read(path);
		if (!found) {
			throw new ImageBuildError(`the SSH packages (${SSH_PACKAGES.join(', ')}) have no ${path}`);
		}

		programs.push({path, bytes: found.bytes});
		infos.push(found.info);
	}

	// Breadth first: each round looks up what the libraries found so far need.
	let closure = neededClosure(infos, soname => libraries.get(soname)?.info);
	while (closure.missing.length > 0) {
		const before = libraries.size;
		await Promise.all(closure.missing.map(findLibrary));
		if (libraries.size === before) {
			throw new ImageBuildError(`the SSH packages (${SSH_PACKAGES.join(', ')}) lack ${closure.missing.join(', ')}, which dropbear needs`);
		}

		closure = neededClosure(infos, soname => libraries.get(soname)?.info);
	}

	const interpreter = infos.find(info => info.interpreter !== undefined)?.interpreter;
	if (interpreter === undefined || infos.some(info => info.interpreter !== interpreter)) {
		throw new ImageBuildError(`${SSH_PROGRAMS.join(' and ')} do not name one dynamic loader`);
	}

	const loader = basename(interpreter);
	await findLibrary(loader);
	const loaderFile = libraries.get(loader);
	if (!loaderFile) {
		throw new ImageBuildError(`the SSH packages have no dynamic loader ${interpreter}`);
	}

	return [
		...programs,
		...closure.libraries.map(soname => ({path: `${LIBRARY_DIR}/${soname}`, bytes: libraries.get(soname)!.bytes})),
		{path: interpreter.replace(/^\/+/, ''), bytes: loaderFile.bytes},
	];
}

async function initramfsEntries(options: {busybox: string; applets: readonly string[]; modules: readonly Module[]; ssh: readonly GuestFile[]}): Promise<CpioEntry[]> {
	const script = (path: string, text: string): CpioEntry => ({type: 'file', path, data: Buffer.from(text), mode: 0o755});
	const directories = ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'run', 'etc', 'lib/modules', LIBRARY_DIR, 'lib64', 'mnt', 'var/log'];
	const applets = options.applets.filter(path => path !== 'bin/busybox' && !path.startsWith('/') && !path.split('/').includes('..'));
	return [
		...directories.map((path): CpioEntry => ({type: 'directory', path})),
		{type: 'directory', path: 'tmp', mode: 0o1777},
		{type: 'directory', path: 'root', mode: 0o700},
		{type: 'symlink', path: 'var/run', target: '/run'},
		// The kernel opens /dev/console for PID 1 before /init can mount devtmpfs.
		{type: 'char-device', path: 'dev/console', major: 5, minor: 1, mode: 0o600},
		{type: 'char-device', path: 'dev/null', major: 1, minor: 3, mode: 0o666},
		{type: 'file', path: 'etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n')},
		{type: 'file', path: 'etc/group', data: Buffer.from('root:x:0:\n')},
		// dropbear lets a user in only with a shell listed here.
		{type: 'file', path: 'etc/shells', data: Buffer.from('/bin/sh\n')},
		script('init', renderInitScript({modules: options.modules.map(module => module.fileName)})),
		script('etc/udhcpc.script', UDHCPC_SCRIPT),
		script('etc/acpi/PWRF/00000080', POWER_BUTTON_SCRIPT),
		{type: 'file', path: 'bin/busybox', data: await readFile(options.busybox), mode: 0o755},
		...applets.map((path): CpioEntry => ({type: 'symlink', path, target: '/bin/busybox'})),
		...options.modules.map((module): CpioEntry => ({type: 'file', path: `lib/modules/${module.fileName}`, data: module.bytes})),
		...options.ssh.map((file): CpioEntry => ({type: 'file', path: file.path, data: file.bytes, mode: 0o755})),
	];
}

type RunOptions = {cwd?: string; encoding?: 'buffer'};

async function run(step: string, file: string, args: readonly string[], options?: RunOptions & {encoding?: undefined}): Promise<{stdout: string}>;
async function run(step: string, file: string, args: readonly string[], options: RunOptions & {encoding: 'buffer'}): Promise<{stdout: Uint8Array}>;
async function run(step: string, file: string, args: readonly string[], options: RunOptions = {}): Promise<{stdout: string | Uint8Array}> {
	try {
		const result = await execa(file, args, {
			cwd: options.cwd,
			stdin: 'ignore',
			// mtools refuses some geometries of image files unless told not to check.
			env: {MTOOLS_SKIP_CHECK: '1'},
			...(options.encoding === 'buffer' ? {encoding: 'buffer' as const} : {}),
		});
		return {stdout: result.stdout};
	} catch (error) {
		const stderr = (error as {stderr?: unknown}).stderr;
		const detail = typeof stderr === 'string' && stderr.trim() !== '' ? stderr.trim().split('\n').slice(-3).join(' / ') : (error as Error).message;
		throw new ImageBuildError(`cannot ${step} (${file}): ${detail}`, {cause: error});
	}
}

async function isOnPath(tool: string): Promise<boolean> {
	const directories = (process.env.PATH ?? '').split(delimiter).filter(directory => directory !== '');
	for (const directory of directories) {
		if (await access(join(directory, tool), constants.X_OK).then(() => true, () => false)) {
			return true;
		}
	}

	return false;
}

async function writeAtomically(path: string, text: string): Promise<void> {
	const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`;
	await writeFile(temporary, text);
	await rename(temporary, path);
}

function formatMib(bytes: number): string {
	return `${(bytes / MIB).toFixed(1)} MiB`;
}
