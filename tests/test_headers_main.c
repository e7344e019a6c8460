/* test_headers: links the one-header translation units; building it is the test. */
int main(void);

int
main(void)
{
	return 0;
}
