#!/usr/bin/env bash
# Build rt_rl_interfaces with plain cmake into the active venv (no colcon needed).
# On a ROS 2 install use `cd rt_rl_ws && colcon build` instead.
set -euo pipefail
: "${VIRTUAL_ENV:?activate the venv first (make setup does)}"
here=$(cd "$(dirname "$0")/.." && pwd)
src="$here/rt_rl_ws/src/rt_rl_interfaces"
build="$here/build/rt_rl_interfaces"
py="$VIRTUAL_ENV/bin/python"

# The wheels' exported CMake files name the include dirs of the image they were built on;
# point them at this venv's Python and numpy headers (idempotent).
py_inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$("$py" -c 'import numpy; print(numpy.get_include())')
{ grep -rl --include='*.cmake' '/opt/python/cp311-cp311' "$VIRTUAL_ENV/share" 2>/dev/null || true; } | while read -r f; do
  sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
         -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" "$f"
done

export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV"
rm -rf "$build"
mkdir -p "$build"
cmake -S "$src" -B "$build" -DCMAKE_INSTALL_PREFIX="$VIRTUAL_ENV" -DCMAKE_BUILD_TYPE=Release \
  -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF >"$build.log" 2>&1 || { tail -30 "$build.log"; exit 1; }
cmake --build "$build" -j 2 >>"$build.log" 2>&1 || { tail -30 "$build.log"; exit 1; }
cmake --install "$build" >>"$build.log" 2>&1 || { tail -30 "$build.log"; exit 1; }
echo "rt_rl_interfaces installed into $VIRTUAL_ENV (log: $build.log)"
