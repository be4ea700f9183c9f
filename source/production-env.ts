/**
 * Imported first by the binaries: React's development build records a performance measure for every
 * component render, several times the cost of the render itself. Operators get the production build.
 */
process.env.NODE_ENV ??= 'production';
