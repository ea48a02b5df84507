// Package offsite copies verified backups to S3-compatible object storage
// and brings them back: every object encrypted with age to the operator's
// recipients on the worker, named by a keyed hash, and uploaded only when the
// bucket does not hold it yet.
//
// The layout under the location's prefix:
//
//	keys/names-<id>.age       the name key, encrypted to the recipients
//	data/<xx>/<name>          one gzip member of an archive, encrypted
//	backups/<backup>/manifest.age   the backup's manifest, encrypted
//	backups/<backup>/index.age      the members in order, encrypted; written last
//
// An object is one archive member (about 1 MiB: a group of small files or a
// piece of a large one), so a tree of 20,000 small files is a few thousand
// objects, and an unchanged file's member is the same object every night.
// Decrypting the objects an index lists, in order, and concatenating them
// gives the backup's tar.gz byte for byte; that is the manual recovery path.
//
// The worker holds recipients only; decrypting needs the identity, which only
// a restore or a remote verification is given. The name key is kept plain in
// the worker's cache and encrypted in the bucket, so a name says nothing about
// a member to anyone without it.
package offsite
