#!/usr/bin/env bash
# Run a command with the settings `make run` uses: keys kept in the data folder
# (made on first use, so nothing secret is needed to start) and the folders of
# the embedded filesystem broker. Variables already set in the environment win.
# Usage: scripts/local-env.sh COMMAND [ARG...]   (from the repository root)
set -euo pipefail

data_dir=$(realpath -m "${SERVERSYNC_DATA_DIR:-var}")
mkdir -p "$data_dir"

# key_file NAME FILE GENERATOR: unless NAME or NAME_FILE is set, point NAME_FILE at
# $data_dir/FILE, writing GENERATOR's output there first if the file is missing.
key_file() {
    local name=$1 file=$data_dir/$2 generator=$3 file_var=${1}_FILE
    [[ -n ${!name:-} || -n ${!file_var:-} ]] && return
    if [[ ! -s $file ]]; then
        (umask 077 && python -c "$generator" >"$file.tmp" && mv "$file.tmp" "$file")
        echo "local-env: generated $file (keep it: it is needed to read what was stored)" >&2
    fi
    export "${name}_FILE=$file"
}
key_file SECRET_KEY secret_key 'import secrets; print(secrets.token_urlsafe(50))'
key_file CREDENTIAL_KEYS credential_keys 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'

# kombu's filesystem transport and Celery's file:// result backend need their folders.
if [[ ${CELERY_BROKER_URL:-filesystem://} == filesystem://* ]]; then
    mkdir -p "$data_dir"/broker/{queue,processed,control} "$data_dir/results"
fi

exec "$@"
