#!/bin/sh
# System packages the tests need: ImageJ 1.x, Jython 2.7 (runs the Fiji menu scripts as Fiji does)
# and a virtual display for the Fiji bridge,
# poppler-utils to render and read report PDFs. Installs only what is missing (Debian/Ubuntu).
set -e
missing=""
[ -f /usr/share/java/ij.jar ] || missing="$missing imagej"
[ -f /usr/share/java/jython.jar ] || missing="$missing jython"
command -v xvfb-run >/dev/null 2>&1 || missing="$missing xvfb xauth"
command -v pdftoppm >/dev/null 2>&1 || missing="$missing poppler-utils"
command -v java >/dev/null 2>&1 || missing="$missing default-jre-headless"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "Missing system packages:$missing; install them with: sudo apt-get install -y$missing" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
