#!/bin/sh
# Builds the two images (Hermes, and the edit container's worker) and
# pushes them to ECR. Usage: deploy/build-and-push.sh [TAG]   (default latest)
# Needs docker and the aws CLI with credentials for the account; reads
# AWS_REGION (default us-east-1) and AWS_ACCOUNT_ID (default: the caller's).
set -eu
cd "$(dirname "$0")/.."
tag=${1:-latest}
region=${AWS_REGION:-us-east-1}
account=${AWS_ACCOUNT_ID:-$(aws sts get-caller-identity --query Account --output text)}
registry="$account.dkr.ecr.$region.amazonaws.com"
version=$(git describe --tags --always --dirty 2>/dev/null || echo "$tag")

aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
for repo in hermes hermes-worker; do
  aws ecr describe-repositories --region "$region" --repository-names "$repo" >/dev/null 2>&1 ||
    aws ecr create-repository --region "$region" --repository-name "$repo" --image-scanning-configuration scanOnPush=true >/dev/null
done

docker build --build-arg VERSION="$version" -t "$registry/hermes:$tag" -f Dockerfile .
docker build --build-arg VERSION="$version" -t "$registry/hermes-worker:$tag" -f Dockerfile.worker .
docker push "$registry/hermes:$tag"
docker push "$registry/hermes-worker:$tag"
echo "pushed $registry/hermes:$tag and $registry/hermes-worker:$tag"
