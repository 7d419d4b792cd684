echo "from the script"
echo "second line: $((6 * 7))"
