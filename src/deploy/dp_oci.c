/*
 * dp_oci.c: reading an OCI image layout directory (the image-spec's
 * "OCI Image Layout": oci-layout, index.json, blobs/sha256/<hex>), the
 * input of the image push (dp_push.c).
 *
 * Design: the layout is trusted for nothing.  index.json must name
 * exactly one image manifest (the one buildah and `skopeo copy oci:`
 * write); the manifest's bytes are kept verbatim, since its digest is
 * the image's identity; every blob is checked against its digest and
 * size before anything is sent, so a damaged layout fails here with the
 * file's name rather than in the registry.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto/crypto.h"
#include "deploy/dp_oci.h"
#include "gcp/common.h"
#include "util/hex.h"

#define MAX_MANIFEST (4u << 20)

int dp_oci_read_file(const char *path, size_t max, struct buf *out, struct err *e)
{
	FILE *f = fopen(path, "rb");
	char chunk[65536];
	size_t n;

	if (!f)
		return err_set(e, "cannot read %s: %s", path, strerror(errno));
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (out->len + n > max || buf_add(out, chunk, n) != 0) {
			fclose(f);
			return err_set(e, "%s: larger than %zu bytes", path, max);
		}
	if (ferror(f)) {
		fclose(f);
		return err_set(e, "reading %s: %s", path, strerror(errno));
	}
	fclose(f);
	return 0;
}

static int valid_digest(const char *d)
{
	size_t i;

	if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
		return 0;
	for (i = 7; d[i]; i++)
		if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f')))
			return 0;
	return 1;
}

int dp_oci_blob_path(const struct dp_image *img, const char *digest, char *out, size_t n)
{
	return (size_t)snprintf(out, n, "%s/blobs/sha256/%s", img->dir, digest + 7) < n ? 0 : -1;
}

/* A descriptor {mediaType, digest, size} into b. */
static int descriptor(const cJSON *d, struct dp_blob *b, const char *where, struct err *e)
{
	const char *digest = gcp_json_str(d, "digest"), *media = gcp_json_str(d, "mediaType");
	int64_t size;

	if (!valid_digest(digest) || gcp_json_i64(d, "size", &size) != 0 || size < 0)
		return err_set(e, "%s: a descriptor needs a sha256 digest and a size", where);
	snprintf(b->digest, sizeof b->digest, "%s", digest);
	snprintf(b->media, sizeof b->media, "%s", media ? media : "");
	b->size = size;
	return 0;
}

int dp_oci_sha256_file(const char *path, char digest[80], int64_t *size, struct err *e)
{
	FILE *f = fopen(path, "rb");
	struct cr_sha256 h;
	unsigned char chunk[65536], sum[CR_SHA256_LEN];
	struct buf hexs = BUF_INIT;
	size_t n;

	if (!f)
		return err_set(e, "cannot read %s: %s", path, strerror(errno));
	cr_sha256_init(&h);
	*size = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		cr_sha256_update(&h, chunk, n);
		*size += (int64_t)n;
	}
	if (ferror(f)) {
		fclose(f);
		return err_set(e, "reading %s: %s", path, strerror(errno));
	}
	fclose(f);
	cr_sha256_final(&h, sum);
	if (hex_encode(&hexs, sum, sizeof sum) != 0)
		return err_set(e, "out of memory");
	snprintf(digest, 80, "sha256:%s", hexs.p);
	buf_free(&hexs);
	return 0;
}

static int check_blob(const struct dp_image *img, const struct dp_blob *b, struct err *e)
{
	char path[1200], got[80];
	int64_t size;

	if (dp_oci_blob_path(img, b->digest, path, sizeof path) != 0)
		return err_set(e, "%s: the path is too long", img->dir);
	if (dp_oci_sha256_file(path, got, &size, e) != 0)
		return -1;
	if (strcmp(got, b->digest) != 0 || size != b->size)
		return err_set(e, "%s: the content does not match its descriptor (sha256 %s, %lld bytes; the "
			"manifest says %lld bytes): rebuild the image layout", path, got, (long long)size,
			(long long)b->size);
	return 0;
}

static int load_manifest(struct dp_image *img, struct err *e)
{
	cJSON *m = cJSON_ParseWithLength(img->manifest.p, img->manifest.len);
	const cJSON *layers, *l;
	int rc = -1;

	if (!cJSON_IsObject(m)) {
		err_set(e, "%s: the image manifest is not JSON", img->dir);
		goto out;
	}
	if (cJSON_GetObjectItemCaseSensitive(m, "manifests")) {
		err_set(e, "%s: index.json names an image index (a multi-platform image); push one platform's "
			"layout", img->dir);
		goto out;
	}
	if (descriptor(cJSON_GetObjectItemCaseSensitive(m, "config"), &img->blobs[0], "manifest config", e) != 0)
		goto out;
	img->n_blobs = 1;
	layers = cJSON_GetObjectItemCaseSensitive(m, "layers");
	if (!cJSON_IsArray(layers)) {
		err_set(e, "%s: the image manifest has no layers list", img->dir);
		goto out;
	}
	cJSON_ArrayForEach(l, layers) {
		if (img->n_blobs >= DP_MAX_BLOBS) {
			err_set(e, "%s: more than %d layers", img->dir, DP_MAX_BLOBS - 1);
			goto out;
		}
		if (descriptor(l, &img->blobs[img->n_blobs], "manifest layer", e) != 0)
			goto out;
		img->n_blobs++;
	}
	rc = 0;
out:
	cJSON_Delete(m);
	return rc;
}

int dp_oci_load(const char *dir, struct dp_image *img, struct err *e)
{
	struct buf index = BUF_INIT;
	char path[1100];
	cJSON *ix = NULL;
	const cJSON *ms;
	struct dp_blob top;
	int i, rc = -1;

	memset(img, 0, sizeof *img);
	if (snprintf(img->dir, sizeof img->dir, "%s", dir) >= (int)sizeof img->dir)
		return err_set(e, "%s: the path is too long", dir);
	snprintf(path, sizeof path, "%s/index.json", dir);
	if (dp_oci_read_file(path, MAX_MANIFEST, &index, e) != 0) {
		err_prefix(e, "%s is not an OCI image layout", dir);
		goto out;
	}
	ix = cJSON_ParseWithLength(index.p, index.len);
	ms = cJSON_GetObjectItemCaseSensitive(ix, "manifests");
	if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) != 1) {
		err_set(e, "%s: index.json must list exactly one manifest", path);
		goto out;
	}
	if (descriptor(cJSON_GetArrayItem(ms, 0), &top, path, e) != 0)
		goto out;
	snprintf(img->manifest_digest, sizeof img->manifest_digest, "%s", top.digest);
	snprintf(img->manifest_media, sizeof img->manifest_media, "%s",
		top.media[0] ? top.media : "application/vnd.oci.image.manifest.v1+json");
	if (dp_oci_blob_path(img, top.digest, path, sizeof path) != 0 ||
			dp_oci_read_file(path, MAX_MANIFEST, &img->manifest, e) != 0 || check_blob(img, &top, e) != 0)
		goto out;
	if (load_manifest(img, e) != 0)
		goto out;
	for (i = 0; i < img->n_blobs; i++)
		if (check_blob(img, &img->blobs[i], e) != 0)
			goto out;
	rc = 0;
out:
	cJSON_Delete(ix);
	buf_free(&index);
	if (rc != 0)
		dp_oci_free(img);
	return rc;
}

void dp_oci_free(struct dp_image *img)
{
	buf_free(&img->manifest);
}
