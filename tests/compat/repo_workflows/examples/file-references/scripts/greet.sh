echo "Hello from external script!"
