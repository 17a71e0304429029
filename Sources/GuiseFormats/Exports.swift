// AtomicFile lives in GuiseFiles so that GuiseImage can share it; users of GuiseFormats
// keep seeing it here.
@_exported import GuiseFiles
