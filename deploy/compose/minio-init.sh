#!/bin/sh
# Run once by docker-compose.yml (service minio-bucket, image minio/mc) before the Forge
# replicas start: the artifact bucket, a policy allowing that bucket only, and the server's
# MinIO user with that policy. Every step is safe to repeat.
set -eu

: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}"
: "${FORGE_S3_BUCKET:?}" "${FORGE_S3_ACCESS_KEY_ID:?}" "${FORGE_S3_SECRET_ACCESS_KEY:?}"

mc alias set forge http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "forge/$FORGE_S3_BUCKET"

policy=/tmp/forge-artifacts-policy.json
cat >"$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
      "Resource": ["arn:aws:s3:::$FORGE_S3_BUCKET"]
    },
    {
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                 "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
      "Resource": ["arn:aws:s3:::$FORGE_S3_BUCKET/*"]
    }
  ]
}
JSON
mc admin policy create forge forge-artifacts "$policy"
mc admin user add forge "$FORGE_S3_ACCESS_KEY_ID" "$FORGE_S3_SECRET_ACCESS_KEY"
# attach fails when the policy is already attached (a second start): then check it is.
mc admin policy attach forge forge-artifacts --user "$FORGE_S3_ACCESS_KEY_ID" \
  || mc admin user info forge "$FORGE_S3_ACCESS_KEY_ID" | grep -q forge-artifacts
echo "bucket $FORGE_S3_BUCKET and user $FORGE_S3_ACCESS_KEY_ID ready"
