#!/bin/sh
# Logs to the console and takes the default user from the environment, as the official image does.
set -eu
{
    echo "loopback_users = none"
    echo "log.console = true"
    echo "log.file = false"
    echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
    echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
} > /etc/rabbitmq/conf.d/10-stand-in.conf
exec rabbitmq-server
